import { describe, expect, it } from "vitest";
import { decodeBody, engineRequest, prefillBody } from "../src/engine-request.js";

const chat = {
  model: "Qwen/Qwen3-0.6B",
  messages: [{ role: "user", content: "hi" }],
  max_completion_tokens: 20,
  temperature: 0.5,
  stream: true,
  stream_options: { include_usage: true },
  logprobs: true,
  top_logprobs: 2,
  nvext: { token_data: [1, 2, 3], backend_instance_id: 5 },
};

describe("engineRequest", () => {
  it("a chat request without tools becomes a completion on the tokens", () => {
    const request = engineRequest("chat", chat, [1, 2, 3]);
    expect(request).toEqual({
      path: "/v1/completions",
      chatAsCompletion: true,
      body: {
        model: "Qwen/Qwen3-0.6B",
        prompt: [1, 2, 3],
        max_tokens: 20,
        temperature: 0.5,
        stream: true,
        stream_options: { include_usage: true },
        logprobs: 2,
      },
    });
  });

  it("a chat request with tools stays chat, the ids in nvext.token_data only", () => {
    const body = { ...chat, tools: [{ type: "function", function: { name: "f" } }] };
    const request = engineRequest("chat", body, [1, 2, 3]);
    expect(request.path).toBe("/v1/chat/completions");
    expect(request.chatAsCompletion).toBe(false);
    expect(request.body["nvext"]).toEqual({ token_data: [1, 2, 3] });
    expect(request.body["messages"]).toEqual(chat.messages);
  });

  it("a completion request gets the ids as its prompt; nvext never reaches the engine", () => {
    const request = engineRequest("completions", { model: "m", prompt: "hello", nvext: { token_data: [4] } }, [4]);
    expect(request).toEqual({ path: "/v1/completions", chatAsCompletion: false, body: { model: "m", prompt: [4] } });
    const untouched = engineRequest("completions", { model: "m", prompt: ["a", "b"] }, undefined);
    expect(untouched.body).toEqual({ model: "m", prompt: ["a", "b"] });
  });

  it("without ids a chat request is forwarded as chat", () => {
    expect(engineRequest("chat", { model: "m", messages: [] }, undefined).path).toBe("/v1/chat/completions");
  });

  it("a tenant's cache salt is passed on", () => {
    expect(engineRequest("completions", { model: "m", prompt: "x" }, undefined, "acme").body["cache_salt"]).toBe(
      "acme",
    );
  });

  it("does not change the client's body", () => {
    const copy = structuredClone(chat);
    engineRequest("chat", chat, [1]);
    expect(chat).toEqual(copy);
  });
});

describe("prefill and decode legs", () => {
  const body = {
    model: "m",
    prompt: [1, 2],
    max_tokens: 50,
    min_tokens: 5,
    stream: true,
    stream_options: { include_usage: true },
  };

  it("prefill: one token, not streamed, do_remote_decode", () => {
    expect(prefillBody(body)).toEqual({
      model: "m",
      prompt: [1, 2],
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
    });
    expect(prefillBody({ ...body, max_completion_tokens: 9 })["max_completion_tokens"]).toBe(1);
  });

  it("decode: the original request with the returned params", () => {
    const params = { do_remote_prefill: true, remote_engine_id: "e" };
    expect(decodeBody(body, params)).toEqual({ ...body, kv_transfer_params: params });
  });
});
