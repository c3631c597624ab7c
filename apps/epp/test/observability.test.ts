import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { trace } from "@opentelemetry/api";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PROBE_PATH } from "../src/index.js";
import {
  MODEL,
  chat,
  closeSharedTokenizer,
  expectFreed,
  idOf,
  respond,
  send,
  sharedTokenizer,
  startEpp,
  storedBatch,
  type TestEpp,
} from "./support.js";

afterAll(closeSharedTokenizer);

const WORKERS = [
  { name: "w1", http: "127.0.0.1:8001" },
  { name: "w2", http: "127.0.0.2:8002" },
];
const PROMPT = "Explain the probe: ".repeat(40);

describe("metrics, decision log, spans and the probe API", () => {
  let t: TestEpp;
  let probe: string;
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });

  beforeAll(async () => {
    trace.setGlobalTracerProvider(provider);
    const { freePort } = await import("@dynamo/testkit");
    t = await startEpp({
      workers: WORKERS,
      tls: false,
      env: { DYN_EPP_PROBE_PORT: String(await freePort()), DYN_EPP_MAX_REQUEST_BODY_BYTES: String(64 * 1024) },
    });
    probe = `http://127.0.0.1:${t.epp.probePort}${PROBE_PATH}`;
  });
  afterAll(async () => {
    await t.close();
    await provider.shutdown();
    trace.disable();
  });

  it("exposes Dynamo's and GAIE's metric names with the request's figures", async () => {
    const { exchange } = await send(t.client, chat("metrics"));
    await respond(exchange, { prompt_tokens: 12, completion_tokens: 5, prompt_tokens_details: { cached_tokens: 64 } });
    await expectFreed(t);
    const text = await (await fetch(`http://127.0.0.1:${t.epp.metricsPort}/metrics`)).text();
    const model = `model="${MODEL}"`;
    for (const series of [
      `dynamo_epp_requests_total{${model},outcome="response_eos"} 1`,
      `dynamo_epp_cached_tokens_count{${model}} 1`,
      `dynamo_epp_cached_tokens_sum{${model}} 64`,
      `dynamo_epp_phase_duration_seconds_count{${model},phase="render_tokenize",outcome="ok"} 1`,
      `dynamo_epp_phase_duration_seconds_count{${model},phase="selection",outcome="ok"} 1`,
      `dynamo_epp_lifecycle_callbacks_total{${model},operation="prefill_complete",result="ok"} 1`,
      `dynamo_epp_lifecycle_callbacks_total{${model},operation="request_complete",result="ok"} 1`,
      `dynamo_epp_streams_inflight{${model}} 0`,
      `dynamo_component_router_requests_started_total{${model},inference_pool=""} 1`,
      `dynamo_component_router_output_sequence_tokens_sum{${model},inference_pool=""} 5`,
      `inference_objective_request_total{model_name="${MODEL}",target_model_name="${MODEL}"} 1`,
      `inference_objective_prompt_cached_tokens_sum{model_name="${MODEL}",target_model_name="${MODEL}"} 64`,
      `inference_objective_output_tokens_sum{model_name="${MODEL}",target_model_name="${MODEL}"} 5`,
      `inference_pool_ready_pods{name=""} 2`,
      `inference_extension_scheduler_attempts_total{status="success"} 1`,
      "process_resident_memory_bytes ",
      "nodejs_eventloop_lag_p99_seconds ",
    ])
      expect(text).toContain(series);
    expect(text).toMatch(/dynamo_epp_cached_tokens_bucket\{le="50",model=/);
    expect(text).toMatch(/dynamo_epp_cached_tokens_bucket\{le="128000",model=/);
    expect(await (await fetch(`http://127.0.0.1:${t.epp.metricsPort}/other`)).status).toBe(404);
  });

  it("traces each request: tokenize and select inside the request, the response lifetime after", async () => {
    exporter.reset();
    const { exchange } = await send(t.client, chat("traced"));
    await respond(exchange);
    await expectFreed(t);
    const spans = exporter.getFinishedSpans();
    const byName = new Map(spans.map((s) => [s.name, s]));
    for (const name of ["epp.request", "epp.tokenize", "epp.select", "epp.response"])
      expect(byName.has(name)).toBe(true);
    const root = byName.get("epp.request")!;
    for (const child of ["epp.tokenize", "epp.select", "epp.response"]) {
      expect(byName.get(child)!.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
      expect(byName.get(child)!.spanContext().traceId).toBe(root.spanContext().traceId);
    }
    expect(byName.get("epp.select")!.attributes["epp.routing_mode"]).toBe("aggregated");
    expect(byName.get("epp.tokenize")!.attributes["epp.prompt_tokens"]).toBeGreaterThan(0);
  });

  it("probe: the decision that would be taken now, per candidate, without booking", async () => {
    const body = chat(PROMPT);
    const tokens = (await (await sharedTokenizer().get(MODEL)).tokenizeRequest("chat", JSON.stringify(body))).tokenIds;
    t.epp.service.applyVllmEvents({ workerId: idOf("w1"), dpRank: 0 }, storedBatch(tokens, 7000n, 8));
    const response = await fetch(probe, { method: "POST", body: JSON.stringify(body) });
    expect(response.status).toBe(200);
    const answer = (await response.json()) as {
      chosen: { worker: string; endpoint: string };
      predictedCachedTokens: number;
      promptTokens: number;
      candidates: Array<{
        worker: string;
        overlapBlocks: number;
        chosen: boolean;
        excluded: boolean;
        reason: string;
        cost: number;
      }>;
    };
    expect(answer.chosen).toMatchObject({ worker: idOf("w1").toString(), endpoint: "127.0.0.1:8001" });
    expect(answer.promptTokens).toBe(tokens.length);
    expect(answer.predictedCachedTokens).toBe(8 * 16);
    expect(answer.candidates).toHaveLength(2);
    const w1 = answer.candidates.find((c) => c.worker === idOf("w1").toString())!;
    const w2 = answer.candidates.find((c) => c.worker === idOf("w2").toString())!;
    expect(w1).toMatchObject({ overlapBlocks: 8, chosen: true, excluded: false });
    expect(w2).toMatchObject({ overlapBlocks: 0, chosen: false, excluded: false, reason: "not chosen" });
    expect(w1.cost).toBeLessThan(w2.cost);
    expect(t.epp.service.status().activeBookings).toBe(0);
    // The subset header restricts the candidates as the gateway's hint does.
    const subset = await fetch(probe, {
      method: "POST",
      headers: { "x-gateway-destination-endpoint-subset": "127.0.0.2:8002" },
      body: JSON.stringify(body),
    });
    expect(((await subset.json()) as { chosen: { worker: string } }).chosen.worker).toBe(idOf("w2").toString());
  });

  it("probe: clear errors for a wrong method or path, bad JSON, a body the template refuses, a body over the limit", async () => {
    expect((await fetch(probe)).status).toBe(405);
    expect((await fetch(probe.replace(PROBE_PATH, "/v1/other"), { method: "POST", body: "{}" })).status).toBe(404);
    const bad = await fetch(probe, { method: "POST", body: "{oops" });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/not valid JSON/);
    const refused = await fetch(probe, { method: "POST", body: JSON.stringify({ model: MODEL, messages: 3 }) });
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { code: string }).code).toBe("invalid_request");
    const tooLarge = await fetch(probe, {
      method: "POST",
      body: JSON.stringify({ model: MODEL, prompt: "x".repeat(70_000) }),
    });
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.headers.get("connection")).toBe("close");
    expect(((await tooLarge.json()) as { error: string }).error).toBe(`request body exceeds ${64 * 1024} bytes`);
  });
});

describe("remote tokenizer (DYN_EPP_TOKENIZER_SERVICE_URL)", () => {
  let renderer: Server;
  let mode = "ok";
  let rendered = 0;

  beforeAll(async () => {
    renderer = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on("data", (c: Buffer) => parts.push(c));
      req.on("end", () => {
        rendered++;
        const body = JSON.parse(Buffer.concat(parts).toString()) as { messages?: unknown };
        if (mode === "slow") return void setTimeout(() => res.end("{}"), 2000);
        if (mode === "4xx") return void res.writeHead(422).end("messages[0].content must be a string");
        if (mode === "5xx") return void res.writeHead(500).end("boom");
        if (mode === "bad json") return void res.writeHead(200).end("not json");
        if (mode === "huge") return void res.writeHead(200).end(JSON.stringify({ token_ids: Array(50_000).fill(1) }));
        const ok = req.url === "/v1/chat/completions/render" && Array.isArray(body.messages);
        res.writeHead(ok ? 200 : 404, { "content-type": "application/json" });
        res.end(JSON.stringify({ token_ids: Array.from({ length: 40 }, (_, i) => 1000 + i) }));
      });
    });
    await new Promise<void>((resolve) => renderer.listen(0, "127.0.0.1", () => resolve()));
  });
  afterAll(() => new Promise<void>((resolve) => (renderer.listening ? renderer.close(() => resolve()) : resolve())));

  it("routes on the renderer's token ids and maps its failures to 400 / 502 / 503 / 504", async () => {
    const url = `http://127.0.0.1:${(renderer.address() as AddressInfo).port}`;
    const t = await startEpp({
      workers: WORKERS,
      tls: false,
      env: {
        DYN_EPP_TOKENIZER_SERVICE_URL: url,
        DYN_EPP_TOKENIZATION_TIMEOUT_MS: "300",
        DYN_EPP_TOKENIZER_MAX_RESPONSE_BYTES: "10000",
      },
    });
    try {
      mode = "ok";
      const { exchange, result } = await send(t.client, chat("remote"));
      if (result.type !== "continue") throw new Error(result.type);
      const forwarded = JSON.parse(result.body!.toString()) as { nvext: { token_data: number[] } };
      expect(forwarded.nvext.token_data).toEqual(Array.from({ length: 40 }, (_, i) => 1000 + i));
      await respond(exchange);
      expect(rendered).toBe(1);
      for (const [m, status] of [
        ["4xx", 400],
        ["5xx", 502],
        ["bad json", 502],
        ["huge", 502],
        ["slow", 504],
      ] as const) {
        mode = m;
        const failed = await send(t.client, chat(m));
        expect(failed.result, m).toMatchObject({ type: "immediate", status });
        failed.exchange.close();
      }
      await new Promise<void>((resolve) => renderer.close(() => resolve()));
      mode = "ok";
      const down = await send(t.client, chat("down"));
      expect(down.result).toMatchObject({ type: "immediate", status: 503 });
      down.exchange.close();
      await expectFreed(t);
    } finally {
      await t.close();
    }
  });
});
