import { describe, expect, it } from "vitest";
import { cachedTokensOf, classifyPrefill } from "../src/prefill.js";

const params = { do_remote_prefill: true, remote_engine_id: "e", remote_block_ids: [1] };
const answer = (finish: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    choices: [{ index: 0, text: "x", finish_reason: finish }],
    usage: { prompt_tokens: 40, completion_tokens: 1, prompt_tokens_details: { cached_tokens: 32 } },
    ...extra,
  });

describe("classifyPrefill", () => {
  it("a length-capped answer with kv_transfer_params is a transfer, with the prefill's cached tokens", () => {
    expect(classifyPrefill(200, "application/json", answer("length", { kv_transfer_params: params }), 50)).toEqual({
      kind: "transfer",
      kvTransferParams: params,
      cachedTokens: 32,
    });
  });

  it("EOS on the first token, or a one-token request, finished in prefill", () => {
    expect(classifyPrefill(200, "", answer("stop", { kv_transfer_params: null }), 50).kind).toBe("finished");
    expect(classifyPrefill(200, "", answer("length", { kv_transfer_params: params }), 1).kind).toBe("finished");
  });

  it("4xx is relayed; 5xx, bad bodies and missing params failed", () => {
    expect(classifyPrefill(429, "application/json", '{"error":{}}', 5)).toEqual({
      kind: "rejected",
      status: 429,
      contentType: "application/json",
      body: '{"error":{}}',
    });
    expect(classifyPrefill(500, "", "boom", 5)).toMatchObject({ kind: "failed", reason: "status 500: boom" });
    expect(classifyPrefill(200, "", "not json", 5)).toMatchObject({ kind: "failed" });
    expect(classifyPrefill(200, "", "[]", 5)).toMatchObject({ kind: "failed" });
    expect(classifyPrefill(200, "", answer("length"), 5)).toMatchObject({
      kind: "failed",
      reason: expect.stringContaining("kv_transfer_params"),
    });
  });

  it("reads cached_tokens only when it is a number", () => {
    expect(cachedTokensOf({ usage: { prompt_tokens_details: null } })).toBeUndefined();
    expect(cachedTokensOf({})).toBeUndefined();
  });
});
