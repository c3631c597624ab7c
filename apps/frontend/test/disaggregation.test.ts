import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MockerHandle } from "@dynamo/mocker";
import { freePort } from "@dynamo/testkit";
import type { Frontend } from "../src/index.js";
import { MODEL, frontendFor, mocker } from "./support.js";

let prefill: MockerHandle;
let decode: MockerHandle;
let frontend: Frontend;
let enforcing: Frontend;

beforeAll(async () => {
  [prefill, decode] = await Promise.all([
    mocker({ disaggregationMode: "prefill", workerNamePrefix: "prefill" }),
    mocker({ disaggregationMode: "decode", workerNamePrefix: "decode" }),
  ]);
  frontend = await frontendFor(decode);
  enforcing = await frontendFor(decode, "--enforce-disagg");
});

afterAll(async () => {
  await frontend?.close();
  await enforcing?.close();
  await Promise.all([prefill?.close(), decode?.close()]);
});

/** The endpoint picker's headers for a disaggregated request: decode here, prefill on the prefill mocker. */
function disaggHeaders(prefillAddress = `127.0.0.1:${prefill.workers[0]!.port}`): Record<string, string> {
  return {
    "x-dynamo-worker-instance-id": String(decode.workers[0]!.id),
    "x-dynamo-dp-rank": "0",
    "x-dynamo-prefill-instance-id": String(prefill.workers[0]!.id),
    "x-dynamo-prefill-dp-rank": "0",
    "x-dynamo-routing-mode": "disaggregated",
    "x-prefiller-host-port": prefillAddress,
  };
}

function clientOf(sidecar: Frontend): OpenAI {
  return new OpenAI({ baseURL: `${sidecar.url}/v1`, apiKey: "unused", maxRetries: 0 });
}

function conversation(topic: string) {
  return [{ role: "user" as const, content: `Explain ${topic} in detail, step by step. `.repeat(6) }];
}

async function streamed(stream: AsyncIterable<OpenAI.ChatCompletionChunk>) {
  let text = "";
  let usage: OpenAI.CompletionUsage | undefined;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta.content ?? "";
    if (chunk.usage) usage = chunk.usage;
  }
  return { text, usage };
}

describe("prefill → decode across two mockers", () => {
  it("prefills on the named worker, decodes here with its kv_transfer_params, one transfer, cached_tokens the prefill's", async () => {
    const messages = conversation("the water cycle");
    // Warm the decode engine with the prompt: its own cached count would be high, the cold prefill's is 0.
    const direct = new OpenAI({ baseURL: `${decode.url}/v1`, apiKey: "unused", maxRetries: 0 });
    const warm = await direct.chat.completions.create({ model: MODEL, messages, max_tokens: 1 });
    expect(warm.usage!.prompt_tokens_details!.cached_tokens).toBe(0);
    const again = await direct.chat.completions.create({ model: MODEL, messages, max_tokens: 1 });
    expect(again.usage!.prompt_tokens_details!.cached_tokens).toBeGreaterThan(0);

    const prefillBefore = prefill.received.length;
    const decodeBefore = decode.received.length;
    const first = await streamed(
      await clientOf(frontend).chat.completions.create(
        { model: MODEL, messages, max_tokens: 8, stream: true, stream_options: { include_usage: true } },
        { headers: disaggHeaders() },
      ),
    );
    expect(first.text.split(" ")).toHaveLength(8);
    expect(first.usage).toMatchObject({ completion_tokens: 8, prompt_tokens_details: { cached_tokens: 0 } });

    expect(prefill.received.length).toBe(prefillBefore + 1);
    const prefillSeen = prefill.received.at(-1)!;
    expect(prefillSeen).toMatchObject({ stream: false, tokenizedByMocker: false, path: "/v1/completions" });
    expect(prefillSeen.kvTransferParams).toMatchObject({ do_remote_decode: true, do_remote_prefill: false });
    expect(prefillSeen.headers["x-prefiller-host-port"]).toBeUndefined();
    expect(prefillSeen.headers["x-dynamo-worker-instance-id"]).toBe(String(prefill.workers[0]!.id));

    expect(decode.received.length).toBe(decodeBefore + 1);
    const decodeSeen = decode.received.at(-1)!;
    expect(decodeSeen.kvTransferParams).toMatchObject({
      do_remote_prefill: true,
      remote_host: "127.0.0.1",
      remote_port: prefill.workers[0]!.port,
    });
    expect(decodeSeen.promptTokenIds).toEqual(prefillSeen.promptTokenIds);
    expect(decodeSeen.headers["x-prefiller-host-port"]).toBeUndefined();

    // The same prompt again: now the prefill worker has it cached, and that is the count the client sees.
    const second = await clientOf(frontend).chat.completions.create(
      { model: MODEL, messages, max_tokens: 4 },
      { headers: disaggHeaders() },
    );
    expect(second.object).toBe("chat.completion");
    expect(second.usage!.prompt_tokens_details!.cached_tokens).toBeGreaterThan(0);
    expect(second.usage!.completion_tokens).toBe(4);
    expect(decode.activeSequences()).toBe(0);
    expect(prefill.activeSequences()).toBe(0);
  });

  it("a one-token request finishes in prefill: its output is returned without decode", async () => {
    const decodeBefore = decode.received.length;
    const prefillBefore = prefill.received.length;
    const reply = await clientOf(frontend).chat.completions.create(
      { model: MODEL, messages: conversation("tides"), max_tokens: 1 },
      { headers: disaggHeaders() },
    );
    expect(reply.choices[0]!.message.content!.length).toBeGreaterThan(0);
    expect(reply.usage!.completion_tokens).toBe(1);
    expect((reply as unknown as Record<string, unknown>)["kv_transfer_params"]).toBeUndefined();
    const stream = await streamed(
      await clientOf(frontend).chat.completions.create(
        {
          model: MODEL,
          messages: conversation("tides"),
          max_tokens: 1,
          stream: true,
          stream_options: { include_usage: true },
        },
        { headers: disaggHeaders() },
      ),
    );
    expect(stream.text).toBe(reply.choices[0]!.message.content);
    expect(stream.usage!.completion_tokens).toBe(1);
    expect(prefill.received.length).toBe(prefillBefore + 2);
    expect(decode.received.length).toBe(decodeBefore);
  });
});

describe("prefill failures", () => {
  it("a 5xx from the prefill worker falls back to a local aggregated decode", async () => {
    prefill.failNext({ status: 500 });
    const decodeBefore = decode.received.length;
    const reply = await clientOf(frontend).chat.completions.create(
      { model: MODEL, messages: conversation("volcanoes"), max_tokens: 3 },
      { headers: disaggHeaders() },
    );
    expect(reply.usage!.completion_tokens).toBe(3);
    expect(decode.received.length).toBe(decodeBefore + 1);
    expect(decode.received.at(-1)!.kvTransferParams).toBeUndefined();
  });

  it("an unreachable prefill worker falls back too", async () => {
    const closed = await freePort();
    const reply = await clientOf(frontend).chat.completions.create(
      { model: MODEL, messages: conversation("glaciers"), max_tokens: 2 },
      { headers: disaggHeaders(`127.0.0.1:${closed}`) },
    );
    expect(reply.usage!.completion_tokens).toBe(2);
    expect(decode.received.at(-1)!.kvTransferParams).toBeUndefined();
  });

  it("with DYN_ENFORCE_DISAGG=true a failed prefill is a 503 naming the prefill worker", async () => {
    prefill.failNext({ status: 503 });
    const decodeBefore = decode.received.length;
    await expect(
      clientOf(enforcing).chat.completions.create(
        { model: MODEL, messages: conversation("deserts"), max_tokens: 2 },
        { headers: disaggHeaders() },
      ),
    ).rejects.toMatchObject({
      status: 503,
      code: "prefill_failed",
      message: expect.stringContaining(`prefill worker ${prefill.workers[0]!.id}`),
    });
    expect(decode.received.length).toBe(decodeBefore);
  });

  it("a 4xx from the prefill worker is relayed to the client as is", async () => {
    prefill.failNext({ status: 400, body: { error: { message: "prompt too long for prefill", code: 400 } } });
    await expect(
      clientOf(frontend).chat.completions.create(
        { model: MODEL, messages: conversation("rivers"), max_tokens: 2 },
        { headers: disaggHeaders() },
      ),
    ).rejects.toMatchObject({ status: 400, message: expect.stringContaining("prompt too long for prefill") });
  });

  it("an aggregated request works end to end even though prefill workers exist", async () => {
    const reply = await clientOf(enforcing).chat.completions.create(
      { model: MODEL, messages: conversation("clouds"), max_tokens: 2 },
      {
        headers: {
          "x-dynamo-worker-instance-id": String(decode.workers[0]!.id),
          "x-dynamo-routing-mode": "aggregated",
        },
      },
    );
    expect(reply.usage!.completion_tokens).toBe(2);
    expect(decode.received.at(-1)!.kvTransferParams).toBeUndefined();
  });
});
