import { request as httpRequest } from "node:http";
import { TokenizerRegistry } from "@dynamo/tokenizer";
import { waitFor } from "@dynamo/testkit";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMocker, type MockerHandle } from "../src/index.js";

const MODEL = "Qwen/Qwen3-0.6B";
const BLOCK = 16;
const story = (topic: string) =>
  `Tell me a long story about ${topic}: where it began, who kept it going, what it cost, and why the ` +
  `people who depended on it never noticed it until the day it failed. Use plain words and short sentences.`;

let mocker: MockerHandle;
let client: OpenAI;
let tokenizers: TokenizerRegistry;

beforeAll(async () => {
  mocker = await startMocker({
    model: MODEL,
    blockSize: BLOCK,
    numGpuBlocks: 512,
    speedupRatio: 20,
    maxModelLen: 4096,
    loraModules: ["sql-lora"],
  });
  client = new OpenAI({ baseURL: `${mocker.url}/v1`, apiKey: "unused", maxRetries: 0 });
  tokenizers = new TokenizerRegistry({ threads: 1 });
});
afterAll(async () => {
  await mocker?.close();
  await tokenizers?.close();
});

/** A raw HTTP exchange (for bodies the openai client would not send). */
function raw(path: string, body: string, method = "POST"): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      `${mocker.url}${path}`,
      { method, headers: { "content-type": "application/json" } },
      (res) => {
        const parts: Buffer[] = [];
        res.on("data", (chunk: Buffer) => parts.push(chunk));
        res.on("end", () => {
          const text = Buffer.concat(parts).toString();
          resolve({ status: res.statusCode!, json: text === "" ? undefined : JSON.parse(text) });
        });
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

describe("the OpenAI surface, with the openai client", () => {
  it("answers a chat completion with deterministic text, the model's token count and cached tokens the second time", async () => {
    const body = {
      model: MODEL,
      messages: [{ role: "user" as const, content: story("a lighthouse") }],
      max_tokens: 12,
    };
    const first = await client.chat.completions.create(body);
    const expected = (await tokenizers.get(MODEL)).tokenizeRequest("chat", body);
    const promptTokens = (await expected).tokenIds.length;
    expect(first.usage).toMatchObject({
      prompt_tokens: promptTokens,
      completion_tokens: 12,
      total_tokens: promptTokens + 12,
    });
    expect(first.usage!.prompt_tokens_details!.cached_tokens).toBe(0);
    expect(first.choices[0]!.finish_reason).toBe("length");
    const text = first.choices[0]!.message.content!;
    expect(text.split(" ")).toHaveLength(12);

    const second = await client.chat.completions.create(body);
    expect(second.choices[0]!.message.content).toBe(text);
    // Every full block but the one holding the last prompt token is served from the cache.
    expect(second.usage!.prompt_tokens_details!.cached_tokens).toBe(Math.floor((promptTokens - 1) / BLOCK) * BLOCK);
    expect(second.usage!.prompt_tokens_details!.cached_tokens).toBeGreaterThan(0);
    const last = mocker.received.at(-1)!;
    expect(last).toMatchObject({ path: "/v1/chat/completions", tokenizedByMocker: true, stream: false });
    expect(last.promptTokenIds).toHaveLength(promptTokens);
  });

  it("streams a chat completion as SSE with the usage chunk of include_usage", async () => {
    const body = { model: MODEL, messages: [{ role: "user" as const, content: story("a ferry") }], max_tokens: 9 };
    const whole = await client.chat.completions.create(body);
    const stream = await client.chat.completions.create({
      ...body,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let usage: OpenAI.CompletionUsage | undefined | null;
    let finish: string | null = null;
    let contentChunks = 0;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices[0];
      if (choice?.delta.content) contentChunks++;
      text += choice?.delta.content ?? "";
      finish = choice?.finish_reason ?? finish;
    }
    expect(text).toBe(whole.choices[0]!.message.content);
    expect(contentChunks).toBe(9);
    expect(finish).toBe("length");
    expect(usage).toMatchObject({ prompt_tokens: whole.usage!.prompt_tokens, completion_tokens: 9 });
    expect(usage!.prompt_tokens_details!.cached_tokens).toBeGreaterThan(0);
    expect(mocker.received.at(-1)!.stream).toBe(true);
  });

  it("serves completions from text, from token ids and from nvext.token_data, streamed or not", async () => {
    const text = await client.completions.create({ model: MODEL, prompt: story("a bridge"), max_tokens: 5 });
    expect(text.object).toBe("text_completion");
    expect(text.choices[0]!.text.split(" ")).toHaveLength(5);
    expect(mocker.received.at(-1)!.tokenizedByMocker).toBe(true);

    const ids = Array.from({ length: 40 }, (_, i) => 1000 + i);
    const fromIds = await client.completions.create({ model: MODEL, prompt: ids, max_tokens: 4 });
    expect(fromIds.usage!.prompt_tokens).toBe(40);
    expect(mocker.received.at(-1)).toMatchObject({ tokenizedByMocker: false, promptTokenIds: ids });

    // nvext.token_data wins over the prompt text: no tokenization, the ids are the prompt.
    const injected = await client.completions.create({
      model: MODEL,
      prompt: "this text is not what the engine sees",
      max_tokens: 4,
      // @ts-expect-error nvext is this project's extension of the request body
      nvext: { token_data: ids },
    });
    expect(injected.usage!.prompt_tokens).toBe(40);
    expect(injected.usage!.prompt_tokens_details!.cached_tokens).toBe(32);
    expect(injected.choices[0]!.text).toBe(fromIds.choices[0]!.text);
    expect(mocker.received.at(-1)).toMatchObject({ tokenizedByMocker: false, promptTokenIds: ids });

    const stream = await client.completions.create({
      model: MODEL,
      prompt: ids,
      max_tokens: 4,
      stream: true,
      stream_options: { include_usage: true },
    });
    let streamed = "";
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      streamed += chunk.choices[0]?.text ?? "";
      if (chunk.usage) usage = chunk.usage;
    }
    expect(streamed).toBe(fromIds.choices[0]!.text);
    expect(usage!.prompt_tokens_details!.cached_tokens).toBe(32);
  });

  it("names the pod and port in response headers and lists the model", async () => {
    const { response } = await client.chat.completions
      .create({ model: MODEL, messages: [{ role: "user", content: "hi" }], max_tokens: 1 })
      .withResponse();
    expect(response.headers.get("x-inference-port")).toBe(String(mocker.workers[0]!.port));
    expect(response.headers.get("x-inference-pod")).toBe(mocker.workers[0]!.name);
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual([MODEL, "sql-lora"]);
    expect(models.data[1]).toMatchObject({ parent: MODEL });
  });

  it("serves a LoRA adapter by its name, with a prefix cache of its own (blocks salted with the adapter)", async () => {
    const ids = Array.from({ length: 48 }, (_, i) => 3000 + i);
    const base = await client.completions.create({ model: MODEL, prompt: ids, max_tokens: 2 });
    expect(base.usage!.prompt_tokens_details!.cached_tokens).toBe(0);
    const first = await client.completions.create({ model: "sql-lora", prompt: ids, max_tokens: 2 });
    expect(first.model).toBe("sql-lora");
    expect(first.usage!.prompt_tokens_details!.cached_tokens).toBe(0);
    const again = await client.completions.create({ model: "sql-lora", prompt: ids, max_tokens: 2 });
    expect(again.usage!.prompt_tokens_details!.cached_tokens).toBe(32);
    const metrics = await (await fetch(`${mocker.url}/metrics`)).text();
    expect(metrics).toContain('max_lora="1"');
  });

  it("refuses bad input with vLLM's error shape and status, and keeps serving", async () => {
    await expect(
      client.chat.completions.create({ model: "other/model", messages: [{ role: "user", content: "hi" }] }),
    ).rejects.toMatchObject({ status: 404, message: expect.stringContaining("other/model") });
    const tooLong = Array.from({ length: 4000 }, (_, i) => i + 1);
    await expect(client.completions.create({ model: MODEL, prompt: tooLong, max_tokens: 200 })).rejects.toMatchObject({
      status: 400,
      message: expect.stringContaining("maximum context length is 4096 tokens"),
    });
    await expect(client.completions.create({ model: MODEL, prompt: "x", max_tokens: -3 })).rejects.toMatchObject({
      status: 400,
    });
    const cases: Array<[string, string, number, string]> = [
      ["/v1/chat/completions", "{not json", 400, "not valid JSON"],
      ["/v1/chat/completions", "[1,2]", 400, "JSON object"],
      ["/v1/chat/completions", JSON.stringify({ model: MODEL, messages: "hi" }), 400, "messages"],
      [
        "/v1/chat/completions",
        JSON.stringify({ model: MODEL, messages: [{ role: "user", content: [{ type: "image_url" }] }] }),
        400,
        "messages",
      ],
      ["/v1/completions", JSON.stringify({ model: MODEL }), 400, "prompt"],
      [
        "/v1/completions",
        JSON.stringify({ model: MODEL, prompt: "x", nvext: { token_data: [1, -2] } }),
        400,
        "token_data",
      ],
      [
        "/v1/completions",
        JSON.stringify({ model: MODEL, prompt: "x", stream_options: { include_usage: true } }),
        400,
        "stream",
      ],
      ["/v1/nothing", "{}", 404, "route"],
    ];
    for (const [path, body, status, words] of cases) {
      const reply = await raw(path, body);
      expect(reply.status, `${path} ${body}`).toBe(status);
      expect(reply.json).toMatchObject({ error: { code: status, message: expect.stringContaining(words) } });
    }
    const oversized = await raw(
      "/v1/completions",
      JSON.stringify({ model: MODEL, prompt: "x".repeat(33 * 1024 * 1024) }),
    );
    expect(oversized.status).toBe(413);
    const ok = await client.completions.create({ model: MODEL, prompt: "still here", max_tokens: 2 });
    expect(ok.choices[0]!.text.length).toBeGreaterThan(0);
  });

  it("fails or drops the next requests on demand", async () => {
    mocker.failNext({ status: 503, count: 2 });
    const ask = () => client.completions.create({ model: MODEL, prompt: "fault", max_tokens: 1 });
    await expect(ask()).rejects.toMatchObject({ status: 503 });
    await expect(ask()).rejects.toMatchObject({ status: 503 });
    await expect(ask()).resolves.toMatchObject({ object: "text_completion" });
    mocker.failNext({ status: 429, body: { error: { message: "slow down", code: 429 } } });
    await expect(ask()).rejects.toMatchObject({ status: 429, message: expect.stringContaining("slow down") });
    mocker.dropNextConnection();
    await expect(ask()).rejects.toBeInstanceOf(OpenAI.APIConnectionError);
    await expect(ask()).resolves.toMatchObject({ object: "text_completion" });
  });

  it("frees a sequence whose client disconnects mid-stream; its blocks stay cached for the next request", async () => {
    const slow = await startMocker({ model: MODEL, blockSize: BLOCK, numGpuBlocks: 512, speedupRatio: 1 });
    try {
      const slowClient = new OpenAI({ baseURL: `${slow.url}/v1`, apiKey: "unused", maxRetries: 0 });
      const ids = Array.from({ length: 200 }, (_, i) => 500 + i);
      const stream = await slowClient.completions.create({ model: MODEL, prompt: ids, max_tokens: 2000, stream: true });
      let chunks = 0;
      // Leaving the loop aborts the HTTP request: the connection closes mid-stream.
      for await (const _chunk of stream) if (++chunks === 3) break;
      expect(chunks).toBe(3);
      await waitFor(() => slow.activeSequences() === 0, "the cancelled sequence to be freed", 20_000);
      expect(slow.activeBlocks()).toBe(0);
      expect(slow.cachedBlocks()).toBeGreaterThanOrEqual(12);
      const again = await slowClient.completions.create({ model: MODEL, prompt: ids, max_tokens: 1 });
      expect(again.usage!.prompt_tokens_details!.cached_tokens).toBe(192);
    } finally {
      await slow.close();
    }
  });

  it("exposes the vllm:* series on /metrics", async () => {
    const text = await (await fetch(`${mocker.url}/metrics`)).text();
    for (const series of [
      "vllm:num_requests_running",
      "vllm:num_requests_waiting",
      "vllm:kv_cache_usage_perc",
      'vllm:cache_config_info{block_size="16"',
      "vllm:lora_requests_info",
      "vllm:prefix_cache_hits_total",
      "vllm:prefix_cache_queries_total",
      "vllm:time_to_first_token_seconds_bucket",
      "vllm:e2e_request_latency_seconds_count",
    ])
      expect(text).toContain(series);
    const hits = /vllm:prefix_cache_hits_total\{[^}]*\} (\d+)/.exec(text);
    expect(Number(hits![1])).toBeGreaterThan(0);
    const health = await fetch(`${mocker.url}/health`);
    expect(health.status).toBe(200);
  });
});
