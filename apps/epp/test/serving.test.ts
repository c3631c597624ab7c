import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DESTINATION_ENDPOINT_KEY, LB_NAMESPACE, SERVED_ENDPOINT_KEY } from "@dynamo/ext-proc";
import { waitFor } from "@dynamo/testkit";
import { afterAll, describe, expect, it } from "vitest";
import {
  MODEL,
  chat,
  checkHealth,
  closeSharedTokenizer,
  expectFreed,
  healthClient,
  idOf,
  metricValue,
  postHeaders,
  respond,
  send,
  startEpp,
  type TestEpp,
} from "./support.js";

afterAll(closeSharedTokenizer);

const W1 = { name: "w1", http: "127.0.0.1:8001" };
const W2 = { name: "w2", http: "127.0.0.2:8002" };

async function withEpp(options: Parameters<typeof startEpp>[0], run: (t: TestEpp) => Promise<void>): Promise<void> {
  const t = await startEpp(options);
  try {
    await run(t);
  } finally {
    await t.close();
  }
}

describe("limits and errors (epp-protocol §8)", () => {
  it("DYN_EPP_MAX_INFLIGHT_REQUESTS: a pick beyond the limit is refused with 503", async () => {
    await withEpp({ workers: [W1], tls: false, env: { DYN_EPP_MAX_INFLIGHT_REQUESTS: "1" } }, async (t) => {
      // 300,000 distinct words: the first pick tokenizes for far longer than the second request takes to arrive.
      const first = t.client.open();
      const words = Array.from({ length: 300_000 }, (_, i) => `s${i.toString(36)}`).join(" ");
      const pending = first.processRequest({ headers: postHeaders(), body: Buffer.from(JSON.stringify(chat(words))) });
      await waitFor(() => t.epp.server.inflightRoutes === 1, "the first pick to start");
      const second = await send(t.client, chat("second"));
      expect(second.result).toMatchObject({ type: "immediate", status: 503 });
      expect(second.result.type === "immediate" && second.result.body.toString()).toMatch(/endpoint picker overloaded/);
      second.exchange.close();
      expect((await pending).type).toBe("continue");
      await respond(first);
      await expectFreed(t);
    });
  });

  it("a full tokenization queue sheds with 429 and retry-after (DYN_EPP_SHED_RETRY_AFTER_SECS)", async () => {
    const env = { DYN_EPP_MAX_TOKENIZATION_BACKLOG_BYTES: "100000", DYN_EPP_SHED_RETRY_AFTER_SECS: "3" };
    await withEpp({ workers: [W1], tls: false, env }, async (t) => {
      // A first prompt of 300,000 distinct words (2.5 MB) keeps the tokenizer busy for far longer than the second
      // request takes to arrive, however fast the machine.
      const first = t.client.open();
      const words = Array.from({ length: 300_000 }, (_, i) => `q${i.toString(36)}`).join(" ");
      const pending = first.processRequest({ headers: postHeaders(), body: Buffer.from(JSON.stringify(chat(words))) });
      await waitFor(() => t.epp.picker.tokenizationBacklogBytes > 0, "the first prompt to queue");
      const second = await send(t.client, chat("x ".repeat(50_000)));
      expect(second.result).toMatchObject({ type: "immediate", status: 429 });
      expect(second.result.type === "immediate" && second.result.headers.get("retry-after")).toBe("3");
      second.exchange.close();
      expect((await pending).type).toBe("continue");
      await respond(first);
      const metrics = t.epp.metricsPort!;
      expect(
        await metricValue(metrics, `dynamo_epp_rejections_total{model="${MODEL}",reason="router_overloaded"}`),
      ).toBe(1);
    });
  });

  it("413 for a body over the limit, 431 for too many metadata headers, 400 for a bad SLO or priority", async () => {
    await withEpp({ workers: [W1], tls: false, env: { DYN_EPP_MAX_REQUEST_BODY_BYTES: "4096" } }, async (t) => {
      const big = await send(t.client, chat("b".repeat(5000)));
      expect(big.result).toMatchObject({ type: "immediate", status: 413 });
      big.exchange.close();
      const meta = Array.from({ length: 65 }, (_, i): [string, string] => [`x-dynamo-meta-k${i}`, "v"]);
      const many = await send(t.client, chat("meta"), { headers: meta });
      expect(many.result).toMatchObject({ type: "immediate", status: 431 });
      many.exchange.close();
      for (const header of [
        ["x-dynamo-meta-slo-ttft-ms", "0"],
        ["x-dynamo-meta-slo-ttft-ms", "soon"],
        ["x-dynamo-request-priority", "high"],
      ] as Array<[string, string]>) {
        const bad = await send(t.client, chat("slo"), { headers: [header] });
        expect(bad.result).toMatchObject({ type: "immediate", status: 400 });
        expect(bad.result.type === "immediate" && bad.result.body.toString()).toContain(header[0]);
        bad.exchange.close();
      }
      const ok = await send(t.client, chat("fine"), {
        headers: [
          ["x-dynamo-meta-policy-class", "gold"],
          ["x-dynamo-meta-slo-ttft-ms", "500"],
          ["x-dynamo-request-priority", "2"],
        ],
      });
      expect(ok.result.type).toBe("continue");
      await respond(ok.exchange);
      expect(t.lines.findLast((l) => l["msg"] === "request")).toMatchObject({
        priority: 2,
        metadata: { "policy-class": "gold", "slo-ttft-ms": "500" },
      });
      expect(t.lines.filter((l) => l["msg"] === "request rejected").map((l) => l["status"])).toEqual([
        413, 431, 400, 400, 400,
      ]);
    });
  });
});

describe("disaggregation and data parallelism", () => {
  it("books a prefill and a decode worker when a prefill pool exists; DYN_ENFORCE_DISAGG without one is 503", async () => {
    const dir = mkdtempSync(join(tmpdir(), "epp-disagg-"));
    const file = join(dir, "workers.json");
    const write = (workers: object[]) => writeFileSync(file, JSON.stringify({ defaults: { model: MODEL }, workers }));
    write([{ name: "decode-0", http: "127.0.0.1:8001", role: "decode" }]);
    try {
      await withEpp({ tls: false, env: { DYN_DISCOVERY_FILE: file, DYN_ENFORCE_DISAGG: "true" } }, async (t) => {
        const refused = await send(t.client, chat("no prefill yet"));
        expect(refused.result).toMatchObject({ type: "immediate", status: 503 });
        refused.exchange.close();
        // A prefill worker appearing later is used from the next request.
        write([
          { name: "decode-0", http: "127.0.0.1:8001", role: "decode" },
          { name: "prefill-0", http: "127.0.0.5:8005", role: "prefill" },
        ]);
        await waitFor(() => t.epp.service.status().workers === 2, "the prefill worker");
        const { exchange, result } = await send(t.client, chat("disaggregated"));
        if (result.type !== "continue") throw new Error(`expected a route, got ${result.type}`);
        expect(result.headers.get(DESTINATION_ENDPOINT_KEY)).toBe("127.0.0.1:8001");
        expect(result.headers.get("x-dynamo-routing-mode")).toBe("disaggregated");
        const prefill = idOf("prefill-0").toString();
        expect(result.headers.get("x-prefill-instance-id")).toBe(prefill);
        expect(result.headers.get("x-dynamo-prefill-instance-id")).toBe(prefill);
        expect(result.headers.get("x-dynamo-prefill-dp-rank")).toBe("0");
        expect(result.headers.get("x-prefiller-host-port")).toBe("127.0.0.5:8005");
        const prefillLoad = () => t.epp.service.router!.load({ workerId: idOf("prefill-0"), dpRank: 0 }, "prefill");
        expect(prefillLoad()!.activeRequests).toBe(1);
        await respond(exchange);
        await expectFreed(t);
        expect(prefillLoad()!.activeRequests).toBe(0);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("falls back to aggregated without prefill workers by default", async () => {
    await withEpp({ workers: [{ ...W1, role: "decode" }], tls: false }, async (t) => {
      const { exchange, result } = await send(t.client, chat("fallback"));
      expect(result.type === "continue" && result.headers.get("x-dynamo-routing-mode")).toBe("aggregated");
      await respond(exchange);
    });
  });

  it("names the DP rank of a data-parallel worker and sends to that rank's port", async () => {
    const dp = {
      name: "dp",
      http: "127.0.0.1:3000",
      dpSize: 3,
      rankHttp: ["127.0.0.1:3000", "127.0.0.1:3002", "127.0.0.1:3004"],
    };
    await withEpp({ workers: [dp], tls: false }, async (t) => {
      const seen = new Map<string, string>();
      const open = [];
      for (let i = 0; i < 3; i++) {
        const { exchange, result } = await send(t.client, chat(`rank ${i}`));
        if (result.type !== "continue") throw new Error(result.type);
        seen.set(result.headers.get("x-dynamo-dp-rank")!, result.headers.get(DESTINATION_ENDPOINT_KEY)!);
        open.push(exchange);
      }
      // Three requests in flight spread over the three ranks (each booked rank is the most loaded).
      expect(Object.fromEntries(seen)).toEqual({ "0": "127.0.0.1:3000", "1": "127.0.0.1:3002", "2": "127.0.0.1:3004" });
      for (const exchange of open) await respond(exchange);
      await expectFreed(t);
    });
  });
});

describe("conformance hooks", () => {
  const selection: [string, string] = ["test-epp-endpoint-selection", "127.0.0.2:8002"];

  it("are off by default: the selection header steers nothing", async () => {
    await withEpp({ workers: [W1, W2], tls: false }, async (t) => {
      // The requests stay in flight together, so each one's booking sends the next to the other worker (load,
      // not a random tie-break, decides): a header that steered would put them all on 127.0.0.2:8002.
      const targets = new Set<string>();
      const open = [];
      for (let i = 0; i < 6; i++) {
        const { exchange, result } = await send(t.client, chat(`conformance ${i}`), { headers: [selection] });
        if (result.type === "continue") targets.add(result.headers.get(DESTINATION_ENDPOINT_KEY)!);
        open.push(exchange);
      }
      for (const exchange of open) await respond(exchange);
      expect(targets).toEqual(new Set(["127.0.0.1:8001", "127.0.0.2:8002"]));
    });
  });

  it("when on, restrict the pick, echo the served endpoint and count a mismatch", async () => {
    await withEpp({ workers: [W1, W2], tls: false, env: { DYN_EPP_CONFORMANCE_HOOKS: "true" } }, async (t) => {
      for (let i = 0; i < 4; i++) {
        const { exchange, result } = await send(t.client, chat(`hook ${i}`), { headers: [selection] });
        expect(result.type === "continue" && result.headers.get(DESTINATION_ENDPOINT_KEY)).toBe("127.0.0.2:8002");
        const served = i === 3 ? "127.0.0.1:8001" : "127.0.0.2:8002";
        const head = await exchange.processResponseHeaders({
          status: 200,
          headers: [["content-type", "application/json"]],
          filterMetadata: { [LB_NAMESPACE]: { [SERVED_ENDPOINT_KEY]: served } },
        });
        expect(head.type === "continue" && head.headers.get("x-conformance-test-served-endpoint")).toBe(served);
        for await (const chunk of exchange.processResponseBody([Buffer.from("{}")])) void chunk;
        exchange.close();
      }
      await expectFreed(t);
      expect(await metricValue(t.epp.metricsPort!, `dynamo_epp_served_endpoint_mismatch_total{model="${MODEL}"}`)).toBe(
        1,
      );
    });
  });
});

describe("health, readiness and shutdown", () => {
  it("is NOT_SERVING until discovery has synced, on the health port and the ext_proc port", async () => {
    const dir = mkdtempSync(join(tmpdir(), "epp-ready-"));
    const file = join(dir, "workers.json");
    writeFileSync(file, "workers: [ {"); // not a valid document yet: discovery has not listed
    const { Epp, eppConfigFromEnv } = await import("../src/index.js");
    const { freePort } = await import("@dynamo/testkit");
    const { memoryLogger, sharedTokenizer } = await import("./support.js");
    const healthPort = await freePort();
    const epp = await Epp.start({
      config: eppConfigFromEnv({
        DYN_DISCOVERY_BACKEND: "static",
        DYN_DISCOVERY_FILE: file,
        DYN_KV_CACHE_BLOCK_SIZE: "16",
        DYN_EPP_EXT_PROC_PORT: "0",
        DYN_EPP_HEALTH_PORT: String(healthPort),
        DYN_EPP_METRICS_PORT: "0",
      }),
      host: "127.0.0.1",
      logger: memoryLogger().logger,
      service: { tokenizer: sharedTokenizer() },
    });
    const health = healthClient(healthPort, false);
    const onExtProc = healthClient(epp.server.port, true);
    try {
      for (const name of ["", "inference-extension", "readiness", "envoy.service.ext_proc.v3.ExternalProcessor"])
        expect(await checkHealth(health, name)).toBe("NOT_SERVING");
      expect(await checkHealth(health, "liveness")).toBe("SERVING");
      writeFileSync(file, JSON.stringify({ workers: [W1] }));
      await waitFor(async () => (await checkHealth(health, "readiness")) === "SERVING", "readiness", 10_000);
      for (const name of ["", "inference-extension", "envoy.service.ext_proc.v3.ExternalProcessor"]) {
        expect(await checkHealth(health, name)).toBe("SERVING");
        expect(await checkHealth(onExtProc, name)).toBe("SERVING");
      }
    } finally {
      health.close();
      onExtProc.close();
      await epp.shutdown({ propagationMs: 0, drainMs: 100 });
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("shutdown: NOT_SERVING at once, in-flight streams finish during the drain, bookings freed", async () => {
    const t = await startEpp({ workers: [W1], tls: false });
    const health = healthClient(Number(t.epp.server.healthPort), false);
    try {
      const { exchange, result } = await send(t.client, chat("in flight at shutdown"));
      expect(result.type).toBe("continue");
      const stopping = t.epp.shutdown({ propagationMs: 300, drainMs: 5000 });
      await waitFor(async () => (await checkHealth(health, "readiness")) === "NOT_SERVING", "NOT_SERVING", 2000);
      expect(t.epp.service.status().activeBookings).toBe(1);
      await respond(exchange);
      await stopping;
      expect(t.epp.service.status().activeBookings).toBe(0);
      expect(t.lines.findLast((l) => l["msg"] === "request")).toMatchObject({ outcome: "complete" });
    } finally {
      health.close();
      t.client.close();
      await t.epp.shutdown();
    }
  });
});
