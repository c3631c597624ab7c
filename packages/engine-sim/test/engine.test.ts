import { describe, expect, it } from "vitest";
import {
  EngineRequestError,
  polynomialDecodeMs,
  polynomialPrefillMs,
  type BlockRemovedEvent,
  type BlockStoredEvent,
} from "../src/index.js";
import { simulated, tokens } from "./support.js";

const CAPACITY = 16_384;

describe("Engine timing", () => {
  it("a lone prompt's first token comes after its prefill; each later token after one decode step", () => {
    const { loop, results, submit } = simulated({ blockSize: 16 });
    submit("a", tokens(512), 3);
    loop.runUntilIdle();
    const r = results.get("a")!;
    expect(r.reason).toBe("length");
    expect(r.outputTokens).toBe(3);
    expect(r.ttftMs).toBeCloseTo(polynomialPrefillMs(512), 9); // 24.386 ms
    // 32 prompt blocks + 1 for the output tokens 513..528, out of 16 384.
    expect(r.meanItlMs).toBeCloseTo(polynomialDecodeMs(33 / CAPACITY), 9);
    expect(r.endMs).toBeCloseTo(polynomialPrefillMs(512) + 2 * polynomialDecodeMs(33 / CAPACITY), 9);
  });

  it("prefills a long prompt in chunks of max_num_batched_tokens", () => {
    const { loop, results, submit, engine } = simulated();
    submit("long", tokens(10_000), 1);
    loop.runUntilIdle();
    expect(results.get("long")!.ttftMs).toBeCloseTo(polynomialPrefillMs(8192) + polynomialPrefillMs(1808), 9);
    expect(engine.stats().steps).toBe(2);
  });

  it("a prefix hit costs no prefill: only the uncached tail is computed", () => {
    const { loop, results, submit, engine } = simulated();
    const prompt = tokens(1000);
    submit("first", prompt, 1);
    loop.runUntilIdle();
    loop.advanceTo(10_000);
    submit("second", prompt, 1);
    loop.runUntilIdle();
    const first = results.get("first")!;
    const second = results.get("second")!;
    expect(first.cachedTokens).toBe(0);
    expect(second.cachedTokens).toBe(960); // 15 full blocks of 64; block 15 holds the last token
    expect(second.ttftMs).toBeCloseTo(polynomialPrefillMs(40), 9);
    expect(engine.stats()).toMatchObject({ prefixCacheQueries: 2000, prefixCacheHits: 960, promptTokens: 2000 });
  });

  it("requests arriving at the same instant share one step", () => {
    const { loop, results, submit } = simulated();
    submit("a", tokens(512, 1), 1);
    submit("b", tokens(512, 100_000), 1);
    loop.runUntilIdle();
    expect(results.get("a")!.ttftMs).toBeCloseTo(polynomialPrefillMs(1024), 9);
    expect(results.get("b")!.ttftMs).toBeCloseTo(polynomialPrefillMs(1024), 9);
  });

  it("a request arriving during a step waits for the next one", () => {
    const { loop, results, submit } = simulated();
    submit("a", tokens(512, 1), 1);
    loop.advanceTo(10);
    submit("b", tokens(512, 100_000), 1);
    loop.runUntilIdle();
    const a = results.get("a")!;
    const b = results.get("b")!;
    expect(a.endMs).toBeCloseTo(polynomialPrefillMs(512), 9);
    expect(b.scheduledMs).toBeCloseTo(a.endMs, 9);
    expect(b.ttftMs).toBeCloseTo(a.endMs - 10 + polynomialPrefillMs(512), 9);
  });

  it("caps running requests at max_num_seqs and admits by priority, then arrival", () => {
    const { loop, results, submit } = simulated({ maxNumSeqs: 1 });
    submit("first", tokens(64, 1), 2);
    submit("late", tokens(64, 1000), 2, { priority: 1 });
    submit("urgent", tokens(64, 2000), 2, { priority: 0 });
    submit("normal", tokens(64, 3000), 2);
    loop.runUntilIdle();
    const order = [...results.values()].sort((x, y) => x.scheduledMs! - y.scheduledMs!).map((r) => r.requestId);
    expect(order).toEqual(["first", "urgent", "normal", "late"]);
    const first = results.get("first")!;
    expect(results.get("urgent")!.scheduledMs).toBeCloseTo(first.endMs, 9);
  });

  it("runs without delays at speedup ratio 0", () => {
    const { loop, results, submit } = simulated({ speedupRatio: 0 });
    submit("a", tokens(3000), 20);
    loop.runUntilIdle();
    expect(results.get("a")).toMatchObject({ outputTokens: 20, ttftMs: 0, endMs: 0 });
  });

  it("divides every duration by the speedup ratio", () => {
    const slow = simulated();
    const fast = simulated({ speedupRatio: 4 });
    for (const s of [slow, fast]) {
      s.submit("a", tokens(700), 5);
      s.loop.runUntilIdle();
    }
    expect(fast.results.get("a")!.endMs).toBeCloseTo(slow.results.get("a")!.endMs / 4, 9);
  });
});

describe("Engine KV cache", () => {
  it("announces newly full blocks once, with parent and tokens, and cache hits not at all", () => {
    const { loop, batches, submit } = simulated({ blockSize: 4 });
    submit("a", tokens(10), 2); // blocks [1..4], [5..8] full; block 2 holds tokens 9, 10 and one output
    loop.runUntilIdle();
    const stored = batches.flatMap((b) => b.events).filter((e): e is BlockStoredEvent => e.type === "BlockStored");
    expect(stored).toHaveLength(1);
    expect(stored[0]!.parentBlockHash).toBeNull();
    expect(stored[0]!.tokenIds).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(stored[0]).toMatchObject({ blockSize: 4, medium: "GPU", loraName: null, loraId: null });
    const before = batches.length;
    submit("b", tokens(10), 1);
    loop.runUntilIdle();
    expect(batches.length).toBe(before); // two hits and a partial block: nothing new to announce
  });

  it("announces blocks filled by generated tokens, continuing the prompt's last block", () => {
    const { loop, batches, submit } = simulated({ blockSize: 4 });
    submit("a", tokens(4), 6); // prompt block 0; outputs 1..4 fill block 1 when the 8th token is computed
    loop.runUntilIdle();
    const stored = batches.flatMap((b) => b.events).filter((e): e is BlockStoredEvent => e.type === "BlockStored");
    expect(stored).toHaveLength(2);
    expect(stored[1]!.parentBlockHash).toBe(stored[0]!.blockHashes[0]);
    expect(stored[1]!.tokenIds).toHaveLength(4);
  });

  it("evicts leaf first: a released chain loses its last blocks before its first", () => {
    const { loop, batches, submit } = simulated({ blockSize: 4, numGpuBlocks: 10, watermark: 0 });
    submit("chain", tokens(33), 1); // 8 full blocks + 1 partial
    loop.runUntilIdle();
    const chain = (batches[0]!.events[0] as BlockStoredEvent).blockHashes;
    expect(chain).toHaveLength(8);
    loop.advanceTo(1000);
    submit("other", tokens(20, 5000), 1); // 5 blocks: 2 free slots, then 3 evictions
    loop.runUntilIdle();
    const removed = batches.flatMap((b) => b.events).filter((e): e is BlockRemovedEvent => e.type === "BlockRemoved");
    expect(removed.flatMap((e) => e.blockHashes)).toEqual([chain[7], chain[6], chain[5]]);
  });

  it("preempts the newest running request (lifo) when decode runs out of blocks, and recomputes it", () => {
    const { loop, results, submit, batches, engine } = simulated({ blockSize: 4, numGpuBlocks: 10, watermark: 0 });
    submit("old", tokens(12, 1), 20);
    submit("new", tokens(12, 100), 20);
    loop.runUntilIdle();
    expect(results.get("old")).toMatchObject({ preemptions: 0, outputTokens: 20 });
    expect(results.get("new")).toMatchObject({ preemptions: 1, outputTokens: 20 });
    expect(results.get("new")!.endMs).toBeGreaterThan(results.get("old")!.endMs);
    expect(engine.stats().preemptions).toBe(1);
    expect(batches.some((b) => b.events.some((e) => e.type === "BlockRemoved"))).toBe(true);
    expect(engine.load()).toMatchObject({ running: 0, waiting: 0, activeBlocks: 0 });
  });

  it("preempts the oldest running request in fifo mode", () => {
    const { loop, results, submit } = simulated({
      blockSize: 4,
      numGpuBlocks: 10,
      watermark: 0,
      preemptionMode: "fifo",
    });
    submit("old", tokens(12, 1), 20);
    submit("new", tokens(12, 100), 20);
    loop.runUntilIdle();
    expect(results.get("old")).toMatchObject({ preemptions: 1, outputTokens: 20 });
    expect(results.get("new")).toMatchObject({ preemptions: 0, outputTokens: 20 });
  });

  it("cancelling frees the request's blocks at once; its full blocks stay cached for the next request", () => {
    const { loop, results, submit, engine } = simulated();
    const prompt = tokens(1000);
    submit("gone", prompt, 100);
    loop.advanceTo(100); // prefill (32 ms) done, then about a dozen decode steps
    expect(engine.requestState("gone")).toMatchObject({ status: "running", promptTokens: 1000 });
    expect(engine.load().activeBlocks).toBe(16);
    expect(engine.cancel("gone")).toBe(true);
    expect(results.get("gone")).toMatchObject({ reason: "cancelled", endMs: 100 });
    expect(results.get("gone")!.outputTokens).toBeGreaterThan(1);
    expect(engine.load()).toMatchObject({ running: 0, activeBlocks: 0 });
    expect(engine.load().cachedBlocks).toBeGreaterThanOrEqual(15);
    expect(engine.cancel("gone")).toBe(false);
    submit("again", prompt, 1);
    loop.runUntilIdle();
    expect(results.get("again")!.cachedTokens).toBe(960);
  });

  it("without prefix caching nothing is reused or announced", () => {
    const { loop, results, submit, batches } = simulated({ enablePrefixCaching: false });
    submit("a", tokens(1000), 2);
    loop.runUntilIdle();
    submit("b", tokens(1000), 2);
    loop.runUntilIdle();
    expect(results.get("b")!.cachedTokens).toBe(0);
    expect(batches).toEqual([]);
  });

  it("resets the prefix cache only when idle, announcing AllBlocksCleared", () => {
    const { loop, results, submit, batches, engine } = simulated();
    submit("a", tokens(1000), 50);
    loop.advanceTo(100);
    expect(engine.resetPrefixCache()).toBe(false);
    loop.runUntilIdle();
    expect(engine.resetPrefixCache()).toBe(true);
    expect(batches.at(-1)!.events).toEqual([{ type: "AllBlocksCleared" }]);
    expect(engine.load().cachedBlocks).toBe(0);
    submit("b", tokens(1000), 1);
    loop.runUntilIdle();
    expect(results.get("b")!.cachedTokens).toBe(0);
  });
});

describe("Engine requests", () => {
  it("rejects requests it can never serve, with a message naming the problem", () => {
    const { engine, submit } = simulated({ numGpuBlocks: 100, blockSize: 16 });
    const bad = (f: () => void, message: RegExp) => {
      expect(f).toThrow(EngineRequestError);
      expect(f).toThrow(message);
    };
    bad(() => submit("e", [], 1), /at least one token/);
    bad(() => submit("m", tokens(4), 0), /maxTokens/);
    bad(() => submit("t", [1, -2, 3], 1), /token 1/);
    bad(() => submit("f", [1, 2.5], 1), /token 1/);
    bad(() => submit("l", tokens(1600), 1), /maximum model length of 1600/);
    bad(() => submit("", tokens(4), 1), /id/);
    submit("dup", tokens(4), 1);
    bad(() => submit("dup", tokens(4), 1), /already in use/);
    expect(engine.unfinished).toBe(1);
  });

  it("generates the same output tokens for the same prompt, or the ones it is given", () => {
    const collect = (extra: Record<string, unknown> = {}) => {
      const { loop, engine } = simulated();
      const out: number[] = [];
      engine.addRequest({ id: "x", tokens: tokens(100), maxTokens: 5, onToken: (t) => out.push(t.tokenId), ...extra });
      loop.runUntilIdle();
      return out;
    };
    expect(collect()).toEqual(collect());
    expect(collect()).toHaveLength(5);
    expect(collect({ outputTokenIds: [7, 8] })).toEqual([7, 8, 7, 8, 7]);
  });

  it("streams tokens in order with their step times, and a callback may cancel its own request", () => {
    const { loop, engine, results } = simulated();
    const seen: Array<[number, number]> = [];
    engine.addRequest({
      id: "s",
      tokens: tokens(300),
      maxTokens: 10,
      onToken: (t) => {
        seen.push([t.index, t.timeMs]);
        if (t.index === 3) engine.cancel("s");
      },
      onFinish: (r) => results.set(r.requestId, r),
    });
    loop.runUntilIdle();
    expect(seen.map(([i]) => i)).toEqual([0, 1, 2, 3]);
    expect(seen.every(([, t], i) => i === 0 || t > seen[i - 1]![1])).toBe(true);
    expect(results.get("s")).toMatchObject({ reason: "cancelled", outputTokens: 4 });
    expect(engine.load().activeBlocks).toBe(0);
  });

  it("rethrows a callback's exception after the step, leaving the engine consistent", () => {
    const { loop, engine, results, submit } = simulated();
    engine.addRequest({
      id: "boom",
      tokens: tokens(100),
      maxTokens: 1,
      onToken: () => {
        throw new Error("client bug");
      },
    });
    submit("fine", tokens(100, 5000), 2);
    expect(() => loop.runUntilIdle()).toThrow("client bug");
    loop.runUntilIdle();
    expect(() => loop.runUntilIdle()).not.toThrow();
    expect(results.get("fine")!.outputTokens).toBe(2);
    expect(engine.unfinished).toBe(0);
  });

  it("reports load signals of waiting and running requests", () => {
    const { loop, engine, submit } = simulated({ maxNumSeqs: 1 });
    submit("a", tokens(500), 10);
    submit("b", tokens(300, 9000), 10);
    loop.advanceTo(1);
    expect(engine.load()).toMatchObject({
      running: 1,
      waiting: 1,
      activeBlocks: 8,
      totalBlocks: CAPACITY,
      kvUsage: 8 / CAPACITY,
      pendingPrefillTokens: 300 + 500,
    });
  });
});
