import { stageAppBundle, TestWorker, waitFor, type RunningProcess, type StagedBundle } from "@dynamo/testkit";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEppProcess, type EppPorts, type EppProcess } from "./epp-processes.js";
import { MODEL, SEED_PROMPT, checkHealth, healthClient, startDevGateway, staticDiscoveryEnv } from "./support.js";

// The EPP runs as it ships: its bundle (`npm run build`), staged outside the workspace with only the dependencies
// the bundle lists, started with plain `node`.
describe("the endpoint picker process: dev gateway → EPP bundle → workers with the openai client", () => {
  let bundle: StagedBundle;
  let workers: TestWorker[];
  let epp: EppProcess;
  let gateway: RunningProcess;
  let gatewayUrl: string;
  let ports: EppPorts;

  beforeAll(async () => {
    workers = [await TestWorker.start("w1", "127.0.0.1"), await TestWorker.start("w2", "127.0.0.2")];
    bundle = await stageAppBundle("epp");
    epp = await startEppProcess(
      bundle,
      "the EPP",
      {
        ...staticDiscoveryEnv(workers.map((w) => ({ name: w.name, http: w.endpoint }))),
        DYN_EVENT_PLANE: "none",
        DYN_KV_CACHE_BLOCK_SIZE: "16",
        DYN_EPP_GRACEFUL_SHUTDOWN_PROPAGATION_SECS: "3",
      },
      { tls: true },
    );
    ports = epp.ports;
    await waitFor(() => epp.process.json().some((l) => l["msg"] === "endpoint picker listening"), "the EPP", 60_000);
    ({ process: gateway, url: gatewayUrl } = await startDevGateway([
      "--epp",
      `127.0.0.1:${ports.extProc}`,
      "--endpoints",
      workers.map((w) => w.endpoint).join(","),
    ]));
  }, 120_000);

  afterAll(async () => {
    await gateway?.stop(0);
    await epp?.stop(0);
    for (const worker of workers ?? []) await worker.close();
    bundle?.remove();
  });

  it("answers the seed's sample chat request, the worker receiving the routing headers and 196 prompt token ids", async () => {
    const health = healthClient(ports.health, false);
    await waitFor(async () => (await checkHealth(health, "inference-extension")) === "SERVING", "readiness", 30_000);
    health.close();
    const openai = new OpenAI({ baseURL: `${gatewayUrl}/v1`, apiKey: "unused", maxRetries: 0 });
    const completion = await openai.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: SEED_PROMPT }],
      stream: false,
      max_tokens: 30,
      temperature: 0.0,
    });
    expect(completion.usage?.prompt_tokens).toBe(196);
    const seen = workers.flatMap((w) => w.seen.map((s) => ({ worker: w, request: s })));
    expect(seen).toHaveLength(1);
    const { worker, request } = seen[0]!;
    expect(completion.choices[0]!.message.content).toContain(`Hello from ${worker.name}`);
    expect(request.headers["x-worker-instance-id"]).toBe(request.headers["x-dynamo-worker-instance-id"]);
    expect(request.headers["x-dynamo-routing-mode"]).toBe("aggregated");
    expect((request.body!["nvext"] as { token_data: number[] }).token_data).toHaveLength(196);
    expect(request.body!["model"]).toBe(MODEL);
    const models = await openai.models.list();
    expect(models.data[0]!.id).toBe(MODEL);
  });

  it("streams a chat completion back through the picker and logs the decision", async () => {
    const openai = new OpenAI({ baseURL: `${gatewayUrl}/v1`, apiKey: "unused", maxRetries: 0 });
    const stream = await openai.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "Tell me about Aeloria." }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    expect(text).toMatch(/^Hello from w[12] \(worker id \d+\)$/);
    await waitFor(
      () => epp.process.json().filter((l) => l["msg"] === "request").length >= 2,
      "the decision log",
      10_000,
    );
    const line = epp.process.json().filter((l) => l["msg"] === "request")[1]!;
    expect(line).toMatchObject({ outcome: "complete", status: 200, actualCachedTokens: 0, completionTokens: 8 });
    expect(typeof line["predictedCachedTokens"]).toBe("number");
    expect(typeof line["ttftMs"]).toBe("number");
    const metrics = await (await fetch(`http://127.0.0.1:${ports.metrics}/metrics`)).text();
    expect(metrics).toContain(`dynamo_epp_requests_total{model="${MODEL}",outcome="response_eos"} 3`);
  });

  it("on SIGTERM reports NOT_SERVING during the propagation delay, then exits 0", async () => {
    const health = healthClient(ports.health, false);
    epp.process.child.kill("SIGTERM");
    // Health answers NOT_SERVING while the process waits out the 3 s propagation delay.
    let status = "SERVING";
    await waitFor(
      async () => (status = await checkHealth(health, "readiness").catch(() => "gone")) !== "SERVING",
      "NOT_SERVING",
      2500,
    );
    expect(status).toBe("NOT_SERVING");
    health.close();
    expect(await epp.process.exited).toBe(0);
    expect(epp.process.json().some((l) => l["msg"] === "endpoint picker stopped")).toBe(true);
  });

  it("refuses to start with a bad variable, naming it (exit 2)", async () => {
    const bad = await startEppProcess(bundle, "a misconfigured EPP", { DYN_EPP_MODE: "sidecar", POD_NAMESPACE: "x" });
    expect(await bad.process.exited).toBe(2);
    await bad.stop();
    expect(bad.process.lines.join("\n")).toMatch(/DYN_EPP_MODE: expected dynamo or standalone, got "sidecar"/);
  });
});
