import { describe, expect, it } from "vitest";
import { SseRewriter, withCachedTokens } from "../src/sse.js";

const upper = (chunk: Record<string, unknown>) => ({ ...chunk, text: String(chunk["text"]).toUpperCase() });

describe("SseRewriter", () => {
  it("returns each complete event as soon as its blank line arrives", () => {
    const sse = new SseRewriter(upper);
    expect(sse.push(Buffer.from('data: {"text":"a"}\n\ndata: {"te'))).toBe('data: {"text":"A"}\n\n');
    expect(sse.push(Buffer.from('xt":"b"}\n'))).toBe("");
    expect(sse.push(Buffer.from("\ndata: [DONE]\n\n"))).toBe('data: {"text":"B"}\n\ndata: [DONE]\n\n');
    expect(sse.end()).toBe("");
  });

  it("handles CRLF framing, comments, and UTF-8 split across chunks", () => {
    const sse = new SseRewriter(upper);
    const bytes = Buffer.from(': ping\r\n\r\ndata: {"text":"é"}\r\n\r\n');
    const split = bytes.indexOf(0xc3) + 1;
    const out = sse.push(bytes.subarray(0, split)) + sse.push(bytes.subarray(split));
    expect(out).toBe(': ping\n\ndata: {"text":"É"}\n\n');
  });

  it("passes data that is not a JSON object unchanged, and leaves a cut-off tail as it was", () => {
    const sse = new SseRewriter(upper);
    expect(sse.push(Buffer.from('data: not json\n\ndata: [1]\n\ndata: {"text"'))).toBe(
      "data: not json\n\ndata: [1]\n\n",
    );
    expect(sse.end()).toBe('data: {"text"');
  });
});

describe("withCachedTokens", () => {
  it("replaces cached_tokens where usage is present", () => {
    expect(
      withCachedTokens({ usage: { prompt_tokens: 9, prompt_tokens_details: { cached_tokens: 0, x: 1 } } }, 8),
    ).toEqual({
      usage: { prompt_tokens: 9, prompt_tokens_details: { cached_tokens: 8, x: 1 } },
    });
    expect(withCachedTokens({ usage: { prompt_tokens: 9, prompt_tokens_details: null } }, 4)).toEqual({
      usage: { prompt_tokens: 9, prompt_tokens_details: { cached_tokens: 4 } },
    });
    const noUsage = { choices: [] };
    expect(withCachedTokens(noUsage, 4)).toBe(noUsage);
    expect(withCachedTokens({ usage: null }, 4)).toEqual({ usage: null });
  });
});
