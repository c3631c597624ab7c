import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MockerHandle } from "@dynamo/mocker";
import { freePortRun, waitFor } from "@dynamo/testkit";
import { TokenizerRegistry } from "@dynamo/tokenizer";
import type { Frontend } from "../src/index.js";
import { MODEL, eppHeaders, frontendFor, mocker, withTokens } from "./support.js";

let engine: MockerHandle;
let frontend: Frontend;
let workerId: bigint;
let client: OpenAI;
let registry: TokenizerRegistry;

const messages = [
  { role: "system" as const, content: "You are a helpful assistant." },
  { role: "user" as const, content: "What is the capital of France? Answer in one sentence." },
];

/** The endpoint picker's token ids for the sample chat: the chat template rendered and tokenized. */
async function eppTokens(body: Record<string, unknown>, kind: "chat" | "completions" = "chat"): Promise<number[]> {
  const tokenizer = await registry.get(MODEL);
  return Array.from((await tokenizer.tokenizeRequest(kind, body)).tokenIds);
}

beforeAll(async () => {
  // DP rank r listens on the base port + r: a free base port.
  engine = await mocker({ dataParallelSize: 2, port: await freePortRun(2) });
  frontend = await frontendFor(engine, "--data-parallel-size=2");
  workerId = engine.workers[0]!.id;
  client = new OpenAI({ baseURL: `${frontend.url}/v1`, apiKey: "unused", maxRetries: 0 });
  registry = new TokenizerRegistry({ threads: 1 });
});

afterAll(async () => {
  await frontend?.close();
  await engine?.close();
  await registry?.close();
});

describe("the EPP's tokens reach the engine verbatim", () => {
  it("a chat request (not streamed) becomes a completion on the EPP's tokens and comes back in chat shape", async () => {
    const tokens = await eppTokens({ model: MODEL, messages });
    const before = engine.received.length;
    const reply = await client.chat.completions.create(withTokens({ model: MODEL, messages, max_tokens: 6 }, tokens), {
      headers: eppHeaders(workerId),
    });
    expect(reply.object).toBe("chat.completion");
    expect(reply.choices[0]!.message.role).toBe("assistant");
    expect(reply.choices[0]!.message.content!.length).toBeGreaterThan(0);
    expect(reply.usage).toMatchObject({ prompt_tokens: tokens.length, completion_tokens: 6 });
    expect(engine.received.length).toBe(before + 1);
    const seen = engine.received.at(-1)!;
    expect(seen.path).toBe("/v1/completions");
    expect(seen.promptTokenIds).toEqual(tokens);
    expect(seen.tokenizedByMocker).toBe(false);
    expect(seen.stream).toBe(false);
    for (const name of Object.keys(seen.headers))
      expect(name).not.toMatch(/^x-(dynamo|worker|prefill|dp|data-parallel)/);
  });

  it("streams chat deltas chunk by chunk, the role first, usage last", async () => {
    const tokens = await eppTokens({ model: MODEL, messages });
    const stream = await client.chat.completions.create(
      withTokens(
        { model: MODEL, messages, max_tokens: 8, stream: true as const, stream_options: { include_usage: true } },
        tokens,
      ),
      { headers: eppHeaders(workerId) },
    );
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.every((c) => c.object === "chat.completion.chunk")).toBe(true);
    expect(chunks[0]!.choices[0]!.delta.role).toBe("assistant");
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
    expect(text.split(" ")).toHaveLength(8);
    expect(chunks.filter((c) => c.choices[0]?.finish_reason === "length")).toHaveLength(1);
    expect(chunks.at(-1)!.usage).toMatchObject({ prompt_tokens: tokens.length, completion_tokens: 8 });
    const seen = engine.received.at(-1)!;
    expect(seen).toMatchObject({ path: "/v1/completions", stream: true, tokenizedByMocker: false });
    expect(seen.promptTokenIds).toEqual(tokens);
  });

  it("a completion request gets the EPP's tokens as its prompt, streamed and not", async () => {
    const body = { model: MODEL, prompt: "The printing press was invented" };
    const tokens = await eppTokens(body, "completions");
    const whole = await client.completions.create(withTokens({ ...body, max_tokens: 4 }, tokens), {
      headers: eppHeaders(workerId),
    });
    expect(whole.object).toBe("text_completion");
    expect(whole.choices[0]!.text.length).toBeGreaterThan(0);
    expect(engine.received.at(-1)!.promptTokenIds).toEqual(tokens);
    const stream = await client.completions.create(
      withTokens({ ...body, max_tokens: 4, stream: true as const }, tokens),
      { headers: eppHeaders(workerId) },
    );
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? "";
    expect(text).toBe(whole.choices[0]!.text);
    expect(engine.received.at(-1)).toMatchObject({ stream: true, tokenizedByMocker: false });
  });

  it("a chat request with tools is forwarded as chat, the tokens still the EPP's", async () => {
    const tools = [{ type: "function" as const, function: { name: "lookup", parameters: { type: "object" } } }];
    const tokens = await eppTokens({ model: MODEL, messages, tools });
    const reply = await client.chat.completions.create(
      withTokens({ model: MODEL, messages, tools, max_tokens: 3 }, tokens),
      { headers: eppHeaders(workerId) },
    );
    expect(reply.object).toBe("chat.completion");
    const seen = engine.received.at(-1)!;
    expect(seen.path).toBe("/v1/chat/completions");
    expect(seen.promptTokenIds).toEqual(tokens);
    expect(seen.tokenizedByMocker).toBe(false);
  });

  it("without token_data the sidecar tokenizes, exactly as the engine would", async () => {
    const body = {
      model: MODEL,
      messages: [{ role: "user" as const, content: "Tokenize me, please: 12345 ünïcödé 🚀" }],
    };
    const direct = new OpenAI({ baseURL: `${engine.url}/v1`, apiKey: "unused", maxRetries: 0 });
    await direct.chat.completions.create({ ...body, max_tokens: 1 });
    const engineOwn = engine.received.at(-1)!;
    expect(engineOwn.tokenizedByMocker).toBe(true);
    await client.chat.completions.create({ ...body, max_tokens: 1 }, { headers: eppHeaders(workerId) });
    const viaFrontend = engine.received.at(-1)!;
    expect(viaFrontend.tokenizedByMocker).toBe(false);
    expect(viaFrontend.promptTokenIds).toEqual(engineOwn.promptTokenIds);
  });
});

describe("routing metadata", () => {
  it("honours the deprecated aliases (worker id, DP rank)", async () => {
    await client.completions.create(
      { model: MODEL, prompt: "alias", max_tokens: 1 },
      { headers: { "x-worker-instance-id": String(workerId), "x-data-parallel-rank": "1" } },
    );
    expect(engine.received.at(-1)).toMatchObject({ workerId, dpRank: 1 });
    await client.completions.create(
      { model: MODEL, prompt: "alias", max_tokens: 1 },
      { headers: { "x-dynamo-worker-instance-id": String(workerId), "x-dp-rank": "1", "x-dynamo-dp-rank": "0" } },
    );
    expect(engine.received.at(-1)).toMatchObject({ workerId, dpRank: 0 });
  });

  it("an unknown worker is 503 naming the id; a DP rank it does not front too", async () => {
    const unknown = client.chat.completions.create(
      { model: MODEL, messages, max_tokens: 1 },
      { headers: eppHeaders(12345n) },
    );
    await expect(unknown).rejects.toMatchObject({
      status: 503,
      code: "worker_not_served",
      message: expect.stringContaining("worker 12345 is not served by this frontend"),
    });
    await expect(
      client.chat.completions.create({ model: MODEL, messages, max_tokens: 1 }, { headers: eppHeaders(workerId, 2) }),
    ).rejects.toMatchObject({ status: 503, message: expect.stringContaining("DP rank 2") });
  });

  it("malformed or contradictory metadata is 502 invalid_epp_metadata", async () => {
    const before = engine.received.length;
    await expect(
      client.chat.completions.create(
        { model: MODEL, messages, max_tokens: 1 },
        { headers: { ...eppHeaders(workerId), "x-dynamo-routing-mode": "disaggregated" } },
      ),
    ).rejects.toMatchObject({ status: 502, code: "invalid_epp_metadata" });
    await expect(
      client.chat.completions.create(
        { model: MODEL, messages, max_tokens: 1 },
        {
          headers: {
            ...eppHeaders(workerId),
            "x-dynamo-routing-mode": "aggregated",
            "x-prefiller-host-port": "10.0.0.1:8000",
          },
        },
      ),
    ).rejects.toMatchObject({ status: 502, code: "invalid_epp_metadata" });
    await expect(
      client.chat.completions.create(withTokens({ model: MODEL, messages }, [1, -2]), {
        headers: eppHeaders(workerId),
      }),
    ).rejects.toMatchObject({
      status: 502,
      code: "invalid_epp_metadata",
      message: expect.stringContaining("token_data[1]"),
    });
    expect(engine.received.length).toBe(before);
  });
});

describe("the HTTP surface", () => {
  it("serves /v1/models from the engine, /health and /metrics", async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toContain(MODEL);
    const health = await fetch(`${frontend.url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: "healthy", worker_id: String(workerId) });
    const metrics = await (await fetch(`${frontend.url}/metrics`)).text();
    expect(metrics).toMatch(
      /dynamo_frontend_requests_total\{endpoint="\/v1\/chat\/completions",request_type="stream",status="success"\} [1-9]/,
    );
    expect(metrics).toMatch(/dynamo_frontend_prompt_token_source_total\{source="epp"\} [1-9]/);
    expect(metrics).toContain("dynamo_frontend_time_to_first_token_seconds_bucket");
  });

  it("answers bad requests with OpenAI errors", async () => {
    const post = (path: string, body: string) =>
      fetch(`${frontend.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body });
    const bad = await post("/v1/chat/completions", "{not json");
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toContain("not valid JSON");
    expect((await post("/v1/embeddings", "{}")).status).toBe(404);
    expect((await fetch(`${frontend.url}/v1/completions`)).status).toBe(405);
    const engineError = await post("/v1/completions", JSON.stringify({ model: "no-such-model", prompt: "x" }));
    expect(engineError.status).toBe(404);
    expect(((await engineError.json()) as { error: { message: string } }).error.message).toContain("no-such-model");
  });

  it("refuses a body over --max-body-bytes with an OpenAI 413 (closing that connection), an engine answer over it with a 503", async () => {
    const small = await frontendFor(engine, "--max-body-bytes=1024");
    try {
      const body = JSON.stringify({ model: MODEL, prompt: "x".repeat(4096), max_tokens: 1 });
      const refused = await fetch(`${small.url}/v1/completions`, { method: "POST", body });
      expect(refused.status).toBe(413);
      expect(refused.headers.get("connection")).toBe("close");
      expect(await refused.json()).toMatchObject({
        error: { type: "invalid_request_error", code: "request_too_large", message: expect.stringContaining("1024") },
      });
      const ok = await fetch(`${small.url}/v1/completions`, {
        method: "POST",
        headers: { ...eppHeaders(workerId), "content-type": "application/json" },
        body: JSON.stringify({ model: MODEL, prompt: "small", max_tokens: 1 }),
      });
      expect(ok.status).toBe(200);
      // An engine answer to rewrite (chat served as a completion) over the limit is not read whole: 503.
      const tokens = await eppTokens({ model: MODEL, messages });
      const long = await fetch(`${small.url}/v1/chat/completions`, {
        method: "POST",
        headers: { ...eppHeaders(workerId), "content-type": "application/json" },
        body: JSON.stringify(withTokens({ model: MODEL, messages, max_tokens: 400 }, tokens)),
      });
      expect(long.status).toBe(503);
      expect(await long.json()).toMatchObject({
        error: { code: "engine_unavailable", message: expect.stringContaining("response body exceeds 1024 bytes") },
      });
    } finally {
      await small.close();
    }
  });
});

describe("client disconnect", () => {
  it("cancels the engine request mid-stream: the engine frees the sequence", async () => {
    const slow = await mocker({ speedupRatio: 1, workerNamePrefix: "slow" });
    const sidecar = await frontendFor(slow);
    try {
      const abort = new AbortController();
      const slowClient = new OpenAI({ baseURL: `${sidecar.url}/v1`, apiKey: "unused", maxRetries: 0 });
      const stream = await slowClient.chat.completions.create(
        { model: MODEL, messages, max_tokens: 2_000, stream: true },
        { headers: eppHeaders(slow.workers[0]!.id), signal: abort.signal },
      );
      let chunks = 0;
      let activeMidStream = -1;
      for await (const _chunk of stream) {
        if (++chunks < 3) continue;
        // Mid-stream: the engine is still generating (2,000 tokens at real-time speed).
        activeMidStream = slow.activeSequences();
        abort.abort();
        break;
      }
      expect(chunks).toBe(3);
      expect(activeMidStream).toBe(1);
      await waitFor(() => slow.activeSequences() === 0, "the engine to free the cancelled sequence", 20_000);
      await waitFor(() => sidecar.inflight === 0, "the sidecar to forget the request", 20_000);
    } finally {
      await sidecar.close();
      await slow.close();
    }
  });
});
