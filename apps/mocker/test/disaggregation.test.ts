import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMocker, type MockerHandle } from "../src/index.js";

const MODEL = "Qwen/Qwen3-0.6B";
const BLOCK = 16;

let prefill: MockerHandle;
let decode: MockerHandle;

beforeAll(async () => {
  [prefill, decode] = await Promise.all([
    startMocker({
      model: MODEL,
      blockSize: BLOCK,
      disaggregationMode: "prefill",
      speedupRatio: 10,
      workerNamePrefix: "prefill",
    }),
    startMocker({
      model: MODEL,
      blockSize: BLOCK,
      disaggregationMode: "decode",
      speedupRatio: 10,
      workerNamePrefix: "decode",
    }),
  ]);
});
afterAll(async () => {
  await Promise.all([prefill?.close(), decode?.close()]);
});

/** The fields of vLLM's NixlConnector handshake a test reads. */
interface KvTransferParams {
  do_remote_prefill: boolean;
  do_remote_decode: boolean;
  remote_block_ids: number[];
  remote_engine_id: string;
  remote_request_id: string;
  remote_host: string;
  remote_port: number;
  tp_size: number;
}

describe("prefill → decode with kv_transfer_params (vLLM NixlConnector, as llm-d's sidecar runs it)", () => {
  it("hands the prompt's KV from a prefill mocker to a decode mocker", async () => {
    const prefillClient = new OpenAI({ baseURL: `${prefill.url}/v1`, apiKey: "unused", maxRetries: 0 });
    const decodeClient = new OpenAI({ baseURL: `${decode.url}/v1`, apiKey: "unused", maxRetries: 0 });
    const messages = [
      { role: "user" as const, content: "Summarise the history of the printing press in ten sentences. ".repeat(5) },
    ];

    // Step 1: the prefill request (max_tokens 1, not streamed, do_remote_decode).
    type WithParams = { kv_transfer_params: Record<string, unknown> }; // vLLM's extension of the request body
    const step1Body: OpenAI.ChatCompletionCreateParamsNonStreaming & WithParams = {
      model: MODEL,
      messages,
      max_tokens: 1,
      stream: false,
      kv_transfer_params: {
        do_remote_decode: true,
        do_remote_prefill: false,
        remote_engine_id: null,
        remote_block_ids: null,
        remote_host: null,
        remote_port: null,
      },
    };
    const step1 = await prefillClient.chat.completions.create(step1Body);
    const params = (step1 as unknown as { kv_transfer_params: KvTransferParams }).kv_transfer_params;
    const promptTokens = step1.usage!.prompt_tokens;
    expect(step1.usage!.completion_tokens).toBe(1);
    expect(params).toMatchObject({
      do_remote_prefill: true,
      do_remote_decode: false,
      remote_host: "127.0.0.1",
      remote_port: prefill.workers[0]!.port,
      remote_request_id: step1.id,
      tp_size: 1,
    });
    expect(params.remote_block_ids).toHaveLength(Math.ceil(promptTokens / BLOCK));
    expect(params.remote_engine_id).toContain(prefill.workers[0]!.name);

    // Step 2: the original request to the decode mocker, streamed, with the returned parameters.
    const step2Body: OpenAI.ChatCompletionCreateParamsStreaming & WithParams = {
      model: MODEL,
      messages,
      max_tokens: 8,
      stream: true,
      stream_options: { include_usage: true },
      kv_transfer_params: { ...params },
    };
    const stream = await decodeClient.chat.completions.create(step2Body);
    let text = "";
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text.split(" ")).toHaveLength(8);
    expect(usage).toMatchObject({ prompt_tokens: promptTokens, completion_tokens: 8 });
    expect(decode.received.at(-1)!.kvTransferParams).toEqual(params);
    expect(prefill.received.at(-1)!.kvTransferParams).toMatchObject({ do_remote_decode: true });
    // The decode worker now holds the prompt's full blocks in its own cache; the prefill side released them.
    expect(decode.activeSequences()).toBe(0);
    expect(decode.cachedBlocks()).toBeGreaterThanOrEqual(Math.floor(promptTokens / BLOCK));
  });

  it("refuses a decode request whose kv_transfer_params lack the prefill's answer", async () => {
    const decodeClient = new OpenAI({ baseURL: `${decode.url}/v1`, apiKey: "unused", maxRetries: 0 });
    await expect(
      decodeClient.completions.create({
        model: MODEL,
        prompt: "hello",
        max_tokens: 2,
        // @ts-expect-error vLLM's extension of the request body
        kv_transfer_params: { do_remote_prefill: true, remote_host: "10.0.0.1" },
      }),
    ).rejects.toMatchObject({ status: 400, message: expect.stringContaining("remote_engine_id") });
    // Without kv_transfer_params a decode-role worker serves the request whole.
    const whole = await decodeClient.completions.create({ model: MODEL, prompt: "hello", max_tokens: 2 });
    expect(whole.usage!.completion_tokens).toBe(2);
  });
});
