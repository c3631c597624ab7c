import { describe, expect, it } from "vitest";
import { ResponseBodyObserver, USAGE_TAIL_BYTES, parseUsage, usageFromJsonTail } from "../src/index.js";

const usageEvent = (prompt: number, cached?: number) =>
  `data: ${JSON.stringify({
    choices: [],
    usage: {
      prompt_tokens: prompt,
      completion_tokens: 3,
      total_tokens: prompt + 3,
      ...(cached !== undefined ? { prompt_tokens_details: { cached_tokens: cached } } : {}),
    },
  })}\n\n`;

describe("SSE usage", () => {
  it("parses usage split across chunks at every byte, last event wins", () => {
    const text = usageEvent(10) + usageEvent(20, 16) + "data: [DONE]\n\n";
    for (let cut = 1; cut < text.length; cut += 5) {
      const observer = new ResponseBodyObserver(true, false);
      observer.push(Buffer.from(text.slice(0, cut)));
      observer.push(Buffer.from(text.slice(cut)));
      observer.finish();
      expect(observer.usage).toEqual({ promptTokens: 20, completionTokens: 3, totalTokens: 23, cachedTokens: 16 });
    }
  });

  it("handles CRLF line ends, multi-byte characters split between chunks and a final unterminated line", () => {
    const event = `data: ${JSON.stringify({ choices: [{ delta: { content: "é漢" } }] })}\r\n\r\n`;
    const bytes = Buffer.from(event + usageEvent(5).trimEnd());
    const observer = new ResponseBodyObserver(true, true);
    const split = bytes.indexOf(Buffer.from("漢")) + 1;
    observer.push(bytes.subarray(0, split));
    observer.push(bytes.subarray(split));
    observer.finish();
    expect(observer.generatedTokens).toBe(3);
    expect(observer.usage?.promptTokens).toBe(5);
  });

  it("bounds the partial line to 64 KiB: a longer line is dropped, later lines still parse", () => {
    const observer = new ResponseBodyObserver(true, true);
    const huge = `data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: 1 }, pad: "p".repeat(USAGE_TAIL_BYTES) })}`;
    for (let i = 0; i < huge.length; i += 4096) observer.push(Buffer.from(huge.slice(i, i + 4096)));
    observer.push(Buffer.from("\n\n" + usageEvent(42)));
    observer.finish();
    expect(observer.usage?.promptTokens).toBe(42);
    expect((observer as unknown as { partial: string }).partial.length).toBeLessThanOrEqual(USAGE_TAIL_BYTES);
  });

  it("ignores usage: null, non-data lines and malformed events", () => {
    const observer = new ResponseBodyObserver(true, true);
    observer.push(Buffer.from(': comment "usage"\nevent: x\ndata: {"usage": null}\ndata: {not json "usage"}\n\n'));
    observer.finish();
    expect(observer.usage).toBeUndefined();
    expect(observer.generatedTokens).toBe(0);
  });
});

describe("non-streaming usage", () => {
  it("reads usage from a small JSON body", () => {
    const observer = new ResponseBodyObserver(false, true);
    observer.push(
      Buffer.from(
        '{"id":"x","usage":{"prompt_tokens":196,"completion_tokens":29,"total_tokens":225,"prompt_tokens_details":null}}',
      ),
    );
    observer.finish();
    expect(observer.usage).toEqual({ promptTokens: 196, completionTokens: 29, totalTokens: 225 });
  });

  it("keeps only a bounded tail of a large body", () => {
    const observer = new ResponseBodyObserver(false, false);
    for (let i = 0; i < 100; i++) observer.push(Buffer.alloc(50_000, 0x61));
    const kept = (observer as unknown as { tailBytes: number }).tailBytes;
    expect(kept).toBeLessThanOrEqual(2 * USAGE_TAIL_BYTES);
    observer.push(Buffer.from('"usage":{"prompt_tokens":9}}'));
    observer.finish();
    expect(observer.usage).toEqual({ promptTokens: 9 });
  });

  it("misses usage that lies entirely before the tail (bounded by design)", () => {
    const observer = new ResponseBodyObserver(false, false);
    observer.push(Buffer.from('{"usage":{"prompt_tokens":9},"pad":"'));
    observer.push(Buffer.alloc(USAGE_TAIL_BYTES + 10, 0x61));
    observer.push(Buffer.from('"}'));
    observer.finish();
    expect(observer.usage).toBeUndefined();
  });
});

describe("usage parsing helpers", () => {
  it("skips escaped occurrences inside strings and reads the real key", () => {
    const text = JSON.stringify({ content: 'the "usage": {"prompt_tokens": 1} text', usage: { prompt_tokens: 2 } });
    expect(usageFromJsonTail(text)).toEqual({ promptTokens: 2 });
    expect(usageFromJsonTail('...cut mid-document ..."usage" : { "completion_tokens" : 4 } }')).toEqual({
      completionTokens: 4,
    });
    expect(usageFromJsonTail('{"usage": null}')).toBeUndefined();
  });

  it("keeps only non-negative integers", () => {
    expect(
      parseUsage({
        prompt_tokens: -1,
        completion_tokens: 1.5,
        total_tokens: "3",
        prompt_tokens_details: { cached_tokens: 0 },
      }),
    ).toEqual({ cachedTokens: 0 });
    expect(parseUsage(null)).toBeUndefined();
    expect(parseUsage([1])).toBeUndefined();
  });
});
