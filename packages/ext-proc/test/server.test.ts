import { connect as tlsConnect } from "node:tls";
import { Client, credentials, makeClientConstructor, status as GrpcStatus, type ServiceError } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BodySendMode,
  HEALTH_SERVICE_NAMES,
  PROCESS_METHOD_PATH,
  type RequestRouter,
  type RouteDecision,
  type RouteRequest,
} from "../src/index.js";
import { RecordingRouter, chatBody, postHeaders, startHarness, type Harness } from "./helpers.js";
import { subsetHint } from "./messages.js";

const POOL = ["10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"];

async function settle(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

type HealthClient = Client & {
  check(
    request: { service: string },
    callback: (error: ServiceError | null, response?: { status: string }) => void,
  ): void;
};

function healthClient(port: number, tls: boolean): HealthClient {
  const Health = makeClientConstructor(healthService as never, "Health");
  const creds = tls
    ? credentials.createSsl(null, null, null, { rejectUnauthorized: false })
    : credentials.createInsecure();
  return new Health(
    `127.0.0.1:${port}`,
    creds,
    tls ? { "grpc.ssl_target_name_override": "localhost" } : {},
  ) as unknown as HealthClient;
}

function check(client: HealthClient, service: string): Promise<string> {
  return new Promise((resolve, reject) =>
    client.check({ service }, (error, response) => (error ? reject(error) : resolve(response!.status))),
  );
}

describe.each([
  ["TLS", true],
  ["h2c", false],
])("ext_proc over real gRPC (%s)", (_name, tls) => {
  let harness: Harness;
  let router: RecordingRouter;

  beforeAll(async () => {
    router = new RecordingRouter(POOL, {
      tokenData: (request) => [...Buffer.from(JSON.stringify((request.body!.json as { messages: unknown }).messages))],
    });
    harness = await startHarness({ router, tls, conformanceHooks: true });
  });
  afterAll(() => harness.close());

  it("serves TLS when asked (a plaintext client cannot talk to it) and h2c otherwise", async () => {
    expect(harness.server.tls !== undefined).toBe(tls);
    if (tls) expect(harness.server.tls!.cert).toContain("BEGIN CERTIFICATE");
    const wrong = new (await import("../src/index.js")).ExtProcClient({
      target: `127.0.0.1:${harness.server.port}`,
      tls: !tls,
      channelOptions: { "grpc.initial_reconnect_backoff_ms": 50 },
    });
    await expect(wrong.waitForReady(1000)).rejects.toThrow();
    wrong.close();
  });

  it("routes a chat request, streams an SSE response back and frees it once", async () => {
    const exchange = harness.client.open();
    const body = chatBody("In the heart of Eldoria...", { stream: true, stream_options: { include_usage: true } });
    const request = await exchange.processRequest({ headers: postHeaders(), body });
    expect(request.type).toBe("continue");
    if (request.type !== "continue") return;
    const destination = request.headers.get("x-gateway-destination-endpoint")!;
    expect(POOL).toContain(destination);
    expect(request.dynamicMetadata["envoy.lb"]).toEqual({ "x-gateway-destination-endpoint": destination });
    expect(request.clearRouteCache).toBe(true);
    const forwarded = JSON.parse(request.body!.toString());
    expect(forwarded.model).toBe("Qwen/Qwen3-0.6B");
    expect(forwarded.nvext.token_data.length).toBeGreaterThan(10);

    const sse = [
      'data: {"choices":[{"delta":{"content":"Once"}}]}\n\n',
      'data: {"choices":[{"delta":{"content":" upon"}}]}\n\n',
      'data: {"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14,"prompt_tokens_details":{"cached_tokens":8}}}\n\ndata: [DONE]\n\n',
    ];
    const head = await exchange.processResponseHeaders({
      status: 200,
      headers: [["content-type", "text/event-stream"]],
      filterMetadata: { "envoy.lb": { "x-gateway-destination-endpoint-served": destination } },
    });
    expect(head.type === "continue" && head.headers.get("x-conformance-test-served-endpoint")).toBe(destination);
    const out: Buffer[] = [];
    for await (const chunk of exchange.processResponseBody(
      (async function* () {
        for (const s of sse) yield Buffer.from(s);
      })(),
    ))
      out.push(chunk);
    expect(Buffer.concat(out).toString()).toBe(sse.join(""));
    exchange.close();
    const streamId = router.requests.at(-1)!.streamId;
    await settle(() => router.eventsOf(streamId).some((e) => e.kind === "end"), "end");
    const events = router.eventsOf(streamId);
    expect(events.map((e) => e.kind)).toEqual([
      "responseStarted",
      "prefillComplete",
      "outputProgress",
      "outputProgress",
      "end",
    ]);
    expect(events.at(-1)).toMatchObject({
      outcome: { reason: "complete", generatedTokens: 2, usage: { cachedTokens: 8 } },
    });
    await settle(() => harness.server.activeStreams === 0, "streams closed");
  });

  it("routes a body sent in many small chunks", async () => {
    const client = new (await import("../src/index.js")).ExtProcClient({
      target: `127.0.0.1:${harness.server.port}`,
      tls: tls ? true : false,
      chunkBytes: 7,
    });
    const exchange = client.open();
    const body = chatBody("x".repeat(2000));
    const result = await exchange.processRequest({ headers: postHeaders(), body });
    expect(result.type).toBe("continue");
    expect(JSON.parse((result as { body: Buffer }).body.toString()).messages[0].content).toHaveLength(2000);
    exchange.close();
    client.close();
  });

  it("routes a header-only GET /v1/models", async () => {
    const exchange = harness.client.open();
    const result = await exchange.processRequest({
      headers: [
        [":method", "GET"],
        [":path", "/v1/models"],
      ],
    });
    expect(result.type).toBe("continue");
    if (result.type === "continue") {
      expect(POOL).toContain(result.headers.get("x-gateway-destination-endpoint"));
      expect(result.body).toBeUndefined();
      expect(result.headers.get("x-worker-instance-id")).toBeUndefined();
    }
    exchange.close();
  });

  it.each([
    ["matching", [POOL[1]!], POOL[1]],
    ["partially matching", ["10.9.9.9:8000", POOL[2]!], POOL[2]],
  ])("honours a %s subset hint", async (_n, subset, expected) => {
    const exchange = harness.client.open({ filterMetadata: subsetHint(subset) });
    const result = await exchange.processRequest({ headers: postHeaders(), body: chatBody("hi") });
    expect(result.type === "continue" && result.headers.get("x-gateway-destination-endpoint")).toBe(expected);
    exchange.close();
  });

  it("answers 503 for a subset outside the pool, 400 for invalid JSON", async () => {
    const none = harness.client.open({ filterMetadata: subsetHint(["10.9.9.9:8000"]) });
    const a = await none.processRequest({ headers: postHeaders(), body: chatBody("hi") });
    expect(a).toMatchObject({ type: "immediate", status: 503 });
    none.close();
    const bad = harness.client.open();
    const b = await bad.processRequest({ headers: postHeaders(), body: Buffer.from("{nope") });
    expect(b).toMatchObject({ type: "immediate", status: 400 });
    expect((b as { body: Buffer }).body.toString()).toContain("not valid JSON");
    bad.close();
  });

  it("removes spoofed routing headers on the way through", async () => {
    const exchange = harness.client.open();
    const result = await exchange.processRequest({
      headers: postHeaders(undefined, [
        ["x-prefiller-host-port", "6.6.6.6:1"],
        ["x-dynamo-worker-instance-id", "666"],
        ["x-gateway-destination-endpoint", "6.6.6.6:1"],
      ]),
      body: chatBody("hi"),
    });
    if (result.type !== "continue") throw new Error(result.type);
    expect(result.headers.get("x-prefiller-host-port")).toBeUndefined();
    expect(result.headers.getAll("x-dynamo-worker-instance-id")).toHaveLength(1);
    expect(result.headers.get("x-dynamo-worker-instance-id")).not.toBe("666");
    expect(result.headers.getAll("x-gateway-destination-endpoint")).toEqual([
      expect.stringMatching(/^10\.0\.0\.\d:8000$/),
    ]);
    exchange.close();
  });

  it("rejects a buffered processing mode with FAILED_PRECONDITION", async () => {
    const client = new (await import("../src/index.js")).ExtProcClient({
      target: `127.0.0.1:${harness.server.port}`,
      tls: tls ? true : false,
      protocolConfig: {
        request_body_mode: BodySendMode.BUFFERED,
        response_body_mode: BodySendMode.FULL_DUPLEX_STREAMED,
      },
    });
    const exchange = client.open();
    const result = await exchange.processRequest({ headers: postHeaders(), body: chatBody("hi") });
    expect(result).toMatchObject({ type: "error", grpcCode: GrpcStatus.FAILED_PRECONDITION });
    expect((result as { message: string }).message).toContain("processing_mode.request_body_mode");
    client.close();
  });

  it("serves every health service name on the ext_proc port", async () => {
    const client = healthClient(harness.server.port, tls);
    for (const name of Object.values(HEALTH_SERVICE_NAMES)) expect(await check(client, name), name).toBe("SERVING");
    await expect(check(client, "no-such-service")).rejects.toMatchObject({ code: GrpcStatus.NOT_FOUND });
    client.close();
  });
});

/** Decisions the test releases by hand, recording lifecycle events. */
class DeferredRouter implements RequestRouter {
  readonly pending: Array<{ request: RouteRequest; resolve: (d: RouteDecision) => void }> = [];
  readonly recorder = new RecordingRouter(POOL);
  route(request: RouteRequest): Promise<RouteDecision> {
    return new Promise((resolve) => this.pending.push({ request, resolve }));
  }
  release(): void {
    const next = this.pending.shift()!;
    next.resolve(this.recorder.route(next.request, new AbortController().signal));
  }
}

describe("robustness", () => {
  it("frees a pick cancelled before and after the decision exactly once", async () => {
    const router = new DeferredRouter();
    const harness = await startHarness({ router, tls: false });
    try {
      const before = harness.client.open();
      void before.processRequest({ headers: postHeaders(), body: chatBody("hi") });
      await settle(() => router.pending.length === 1, "pick pending");
      before.close();
      await settle(() => harness.server.activeStreams === 0, "stream closed");
      router.release();
      await settle(() => router.recorder.ends().length === 1, "abandoned end");
      expect(router.recorder.events.map((e) => e.kind)).toEqual(["end"]);
      expect(router.recorder.ends()[0]!.outcome.reason).toBe("abandoned");

      const after = harness.client.open();
      const pending = after.processRequest({ headers: postHeaders(), body: chatBody("hi") });
      await settle(() => router.pending.length === 1, "second pick pending");
      router.release();
      expect((await pending).type).toBe("continue");
      after.close();
      await settle(() => router.recorder.ends().length === 2, "cancelled end");
      await new Promise((r) => setTimeout(r, 50));
      expect(router.recorder.ends().map((e) => e.outcome.reason)).toEqual(["abandoned", "cancelled"]);
      expect(harness.summaries.map((s) => s.outcome)).toEqual(["incomplete", "incomplete"]);
    } finally {
      await harness.close();
    }
  });

  it("answers 503 beyond the in-flight decision limit", async () => {
    const router = new DeferredRouter();
    const harness = await startHarness({ router, tls: false, maxInflightRoutes: 2 });
    try {
      const exchanges = [0, 1, 2].map(() => harness.client.open());
      const results = exchanges.map((e) => e.processRequest({ headers: postHeaders(), body: chatBody("hi") }));
      const third = await results[2]!;
      expect(third).toMatchObject({ type: "immediate", status: 503 });
      expect(harness.server.inflightRoutes).toBe(2);
      router.release();
      router.release();
      expect((await results[0]!).type).toBe("continue");
      expect((await results[1]!).type).toBe("continue");
      expect(harness.server.inflightRoutes).toBe(0);
      for (const e of exchanges) e.close();
    } finally {
      await harness.close();
    }
  });

  it("survives malformed protobuf and abrupt stream ends, and keeps serving", async () => {
    const router = new RecordingRouter(POOL);
    const harness = await startHarness({ router, tls: false });
    try {
      const raw = new Client(`127.0.0.1:${harness.server.port}`, credentials.createInsecure());
      const status = await new Promise<number>((resolve) => {
        const call = raw.makeBidiStreamRequest(
          PROCESS_METHOD_PATH,
          (b: Buffer) => b,
          (b: Buffer) => b,
        );
        call.on("status", (s: { code: number }) => resolve(s.code));
        call.on("error", () => undefined);
        call.on("data", () => undefined);
        call.write(Buffer.from([0x12, 0xff, 0xff, 0xff, 0x0f]));
      });
      expect(status).not.toBe(GrpcStatus.OK);
      raw.close();

      for (let i = 0; i < 5; i++) {
        const exchange = harness.client.open();
        void exchange.processRequest({
          headers: postHeaders(),
          body: (async function* () {
            yield chatBody("partial").subarray(0, 10);
            await new Promise((r) => setTimeout(r, 5));
          })(),
        });
        await new Promise((r) => setTimeout(r, 10));
        exchange.close();
      }
      await settle(() => harness.server.activeStreams === 0, "streams closed");
      expect(router.requests).toHaveLength(0);

      const exchange = harness.client.open();
      expect((await exchange.processRequest({ headers: postHeaders(), body: chatBody("still here") })).type).toBe(
        "continue",
      );
      exchange.close();
    } finally {
      await harness.close();
    }
  });

  it("handles 1,000 concurrent streams, each freed exactly once", async () => {
    const router = new RecordingRouter(POOL);
    // Graceful close: Node 20's HTTP/2 server drops a connection after ~1000 fast stream resets.
    const harness = await startHarness({ router, tls: true }, { closeMode: "graceful" });
    try {
      const run = async (i: number) => {
        const exchange = harness.client.open();
        const request = await exchange.processRequest({
          headers: postHeaders(undefined, [["x-request-id", `r${i}`]]),
          body: chatBody(`request ${i}`),
        });
        if (request.type !== "continue") throw new Error(`request ${i}: ${request.type}`);
        await exchange.processResponseHeaders({ status: 200, headers: [["content-type", "application/json"]] });
        const out: Buffer[] = [];
        for await (const chunk of exchange.processResponseBody([
          Buffer.from(`{"id":${i},"usage":{"prompt_tokens":${i}}}`),
        ]))
          out.push(chunk);
        exchange.close();
        return JSON.parse(Buffer.concat(out).toString()).id as number;
      };
      const ids = await Promise.all(Array.from({ length: 1000 }, (_, i) => run(i)));
      expect(ids).toEqual(Array.from({ length: 1000 }, (_, i) => i));
      await settle(() => router.ends().length === 1000 && harness.server.activeStreams === 0, "all ends");
      const perStream = new Map<string, number>();
      for (const end of router.ends()) perStream.set(end.streamId, (perStream.get(end.streamId) ?? 0) + 1);
      expect(perStream.size).toBe(1000);
      expect([...perStream.values()].every((n) => n === 1)).toBe(true);
      expect(router.ends().every((e) => e.outcome.reason === "complete")).toBe(true);
    } finally {
      await harness.close();
    }
  }, 120_000);

  it("keeps one connection through more than a thousand gracefully closed streams", async () => {
    const router = new RecordingRouter(POOL);
    const harness = await startHarness({ router, tls: false }, { closeMode: "graceful" });
    try {
      let next = 0;
      const failures: string[] = [];
      await Promise.all(
        Array.from({ length: 50 }, async () => {
          while (next < 1200) {
            next++;
            const exchange = harness.client.open();
            const result = await exchange.processRequest({
              headers: [
                [":method", "GET"],
                [":path", "/v1/models"],
              ],
            });
            if (result.type !== "continue") failures.push(JSON.stringify(result));
            exchange.close();
          }
        }),
      );
      expect(failures).toEqual([]);
      await settle(() => harness.summaries.length === 1200, "every stream ended");
    } finally {
      await harness.close();
    }
  }, 120_000);
});

describe("TLS", () => {
  it("negotiates h2 by ALPN with a self-signed certificate for localhost and 0.0.0.0", async () => {
    const harness = await startHarness({ router: new RecordingRouter(POOL), tls: true });
    try {
      const socket = tlsConnect({
        host: "127.0.0.1",
        port: harness.server.port,
        ALPNProtocols: ["h2"],
        rejectUnauthorized: false,
      });
      await new Promise<void>((resolve, reject) => socket.once("secureConnect", resolve).once("error", reject));
      expect(socket.alpnProtocol).toBe("h2");
      const certificate = socket.getPeerCertificate();
      socket.destroy();
      expect(certificate.subjectaltname).toContain("DNS:localhost");
      expect(certificate.subjectaltname).toContain("IP Address:0.0.0.0");
      expect(certificate.issuer.CN).toBe(certificate.subject.CN);
    } finally {
      await harness.close();
    }
  });
});

describe("health and shutdown", () => {
  it("reports readiness from the probe on the plaintext health port, liveness independently", async () => {
    let ready = false;
    const harness = await startHarness({
      router: new RecordingRouter(POOL),
      tls: true,
      healthPort: 0,
      readiness: () => ready,
      readinessIntervalMs: 20,
    });
    const client = healthClient(harness.server.healthPort!, false);
    try {
      expect(await check(client, "liveness")).toBe("SERVING");
      for (const name of ["", "readiness", "inference-extension", "envoy.service.ext_proc.v3.ExternalProcessor"]) {
        expect(await check(client, name), name).toBe("NOT_SERVING");
      }
      ready = true;
      await settle(() => harness.server.health.ready, "ready");
      expect(await check(client, "readiness")).toBe("SERVING");
      expect(await check(client, "envoy.service.ext_proc.v3.ExternalProcessor")).toBe("SERVING");
    } finally {
      client.close();
      await harness.close();
    }
  });

  it("drains: NOT_SERVING at once, in-flight streams finish, then the server stops", async () => {
    const router = new RecordingRouter(POOL);
    const harness = await startHarness({ router, tls: false, healthPort: 0 });
    const health = healthClient(harness.server.healthPort!, false);
    try {
      const exchange = harness.client.open();
      const request = await exchange.processRequest({ headers: postHeaders(), body: chatBody("in flight") });
      expect(request.type).toBe("continue");
      const stopped = harness.server.shutdown({ propagationMs: 100, graceMs: 10_000 });
      expect(await check(health, "readiness")).toBe("NOT_SERVING");
      expect(await check(health, "liveness")).toBe("SERVING");
      await new Promise((r) => setTimeout(r, 150));
      await exchange.processResponseHeaders({ status: 200, headers: [] });
      const out: Buffer[] = [];
      for await (const chunk of exchange.processResponseBody([Buffer.from("done")])) out.push(chunk);
      expect(Buffer.concat(out).toString()).toBe("done");
      exchange.close();
      await stopped;
      expect(router.ends().map((e) => e.outcome.reason)).toEqual(["complete"]);
    } finally {
      health.close();
      await harness.close();
    }
  });
});
