import { describe, expect, it } from "vitest";
import { EngineRequestError, EngineWorker, VirtualLoop, type KvEventBatch } from "../src/index.js";
import { tokens } from "./support.js";

describe("EngineWorker (data parallel)", () => {
  it("runs one engine per rank, each publishing its own batches, and sends requests to the least busy rank", () => {
    const loop = new VirtualLoop();
    const batches: KvEventBatch[] = [];
    const worker = new EngineWorker({ dataParallelSize: 2, onKvEvents: (b) => batches.push(b) }, loop.clock);
    loop.add(...worker.ranks);
    expect(worker.ranks.map((e) => e.rank)).toEqual([0, 1]);
    expect(worker.addRequest({ id: "a", tokens: tokens(200), maxTokens: 2 })).toBe(0);
    expect(worker.addRequest({ id: "b", tokens: tokens(200, 5000), maxTokens: 2 })).toBe(1);
    expect(worker.addRequest({ id: "c", tokens: tokens(200, 9000), maxTokens: 2, dpRank: 1 })).toBe(1);
    expect(worker.load().map((l) => l.waiting + l.running)).toEqual([1, 2]);
    loop.runUntilIdle();
    expect(new Set(batches.map((b) => b.dataParallelRank))).toEqual(new Set([0, 1]));
    expect(worker.load().map((l) => l.cachedBlocks)).toEqual([3, 6]);
  });

  it("cancels on whichever rank holds the request and rejects unknown ranks and reused ids", () => {
    const loop = new VirtualLoop();
    const worker = new EngineWorker({ dataParallelSize: 2 }, loop.clock);
    loop.add(...worker.ranks);
    worker.addRequest({ id: "a", tokens: tokens(200), maxTokens: 50, dpRank: 1 });
    expect(() => worker.addRequest({ id: "a", tokens: tokens(10), maxTokens: 1 })).toThrow(EngineRequestError);
    expect(() => worker.addRequest({ id: "b", tokens: tokens(10), maxTokens: 1, dpRank: 2 })).toThrow(/dpRank 2/);
    loop.advanceTo(50);
    expect(worker.cancel("a")).toBe(true);
    expect(worker.cancel("a")).toBe(false);
    expect(worker.load()[1]!.activeBlocks).toBe(0);
  });
});
