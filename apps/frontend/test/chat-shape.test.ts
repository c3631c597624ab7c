import { describe, expect, it } from "vitest";
import { completionAsChunks, completionChunkMapper, completionToChat } from "../src/chat-shape.js";

const usage = { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 };

describe("completion → chat", () => {
  it("maps a response, keeping usage and kv_transfer_params", () => {
    const chat = completionToChat({
      id: "cmpl-1",
      object: "text_completion",
      created: 7,
      model: "m",
      choices: [{ index: 0, text: "Hi there", logprobs: null, finish_reason: "stop", stop_reason: null }],
      usage,
      kv_transfer_params: { do_remote_prefill: true },
    });
    expect(chat).toEqual({
      id: "chatcmpl-1",
      object: "chat.completion",
      created: 7,
      model: "m",
      choices: [
        {
          index: 0,
          message: { role: "assistant", content: "Hi there" },
          logprobs: null,
          finish_reason: "stop",
          stop_reason: null,
        },
      ],
      usage,
      kv_transfer_params: { do_remote_prefill: true },
    });
  });

  it("maps logprobs to the chat form", () => {
    const chat = completionToChat({
      choices: [
        {
          index: 0,
          text: "é",
          finish_reason: "length",
          logprobs: { tokens: ["é"], token_logprobs: [-0.5], top_logprobs: [{ é: -0.5, e: -1 }], text_offset: [0] },
        },
      ],
    });
    expect((chat["choices"] as Array<Record<string, unknown>>)[0]!["logprobs"]).toEqual({
      content: [
        {
          token: "é",
          logprob: -0.5,
          bytes: [0xc3, 0xa9],
          top_logprobs: [
            { token: "é", logprob: -0.5, bytes: [0xc3, 0xa9] },
            { token: "e", logprob: -1, bytes: [0x65] },
          ],
        },
      ],
    });
  });

  it("maps streamed chunks to deltas, the role on each choice's first delta", () => {
    const map = completionChunkMapper();
    const chunk = (text: string, finish: string | null) => ({
      id: "cmpl-2",
      object: "text_completion",
      created: 1,
      model: "m",
      choices: [{ index: 0, text, logprobs: null, finish_reason: finish }],
    });
    expect(map(chunk("Hel", null))).toEqual({
      id: "chatcmpl-2",
      object: "chat.completion.chunk",
      created: 1,
      model: "m",
      choices: [{ index: 0, delta: { role: "assistant", content: "Hel" }, logprobs: null, finish_reason: null }],
    });
    expect(map(chunk("lo", null))["choices"]).toEqual([
      { index: 0, delta: { content: "lo" }, logprobs: null, finish_reason: null },
    ]);
    expect(map(chunk("", "stop"))["choices"]).toEqual([{ index: 0, delta: {}, logprobs: null, finish_reason: "stop" }]);
    expect(map({ id: "cmpl-2", object: "text_completion", created: 1, model: "m", choices: [], usage })).toEqual({
      id: "chatcmpl-2",
      object: "chat.completion.chunk",
      created: 1,
      model: "m",
      choices: [],
      usage,
    });
  });

  it("a finished response as chunks for a streaming client", () => {
    const response = {
      id: "cmpl-3",
      object: "text_completion",
      model: "m",
      choices: [{ index: 0, text: "x", finish_reason: "stop" }],
      usage,
    };
    expect(completionAsChunks(response, true)).toEqual([
      {
        id: "cmpl-3",
        object: "text_completion",
        model: "m",
        choices: [{ index: 0, text: "x", finish_reason: "stop" }],
      },
      { id: "cmpl-3", object: "text_completion", model: "m", choices: [], usage },
    ]);
    expect(completionAsChunks(response, false)).toHaveLength(1);
  });
});
