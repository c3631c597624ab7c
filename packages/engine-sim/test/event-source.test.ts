import { describe, expect, it } from "vitest";
import { EngineEventSource, type KvEventBatch } from "../src/index.js";

const take = (source: EngineEventSource, n: number): KvEventBatch[] =>
  Array.from({ length: n }, () => source.nextBatch());

describe("EngineEventSource", () => {
  it("pulls the same stream for the same options, another for another seed", () => {
    const a = take(new EngineEventSource({ blockSize: 4, numGpuBlocks: 64, seed: 3 }), 50);
    expect(a).toEqual(take(new EngineEventSource({ blockSize: 4, numGpuBlocks: 64, seed: 3 }), 50));
    expect(a).not.toEqual(take(new EngineEventSource({ blockSize: 4, numGpuBlocks: 64, seed: 4 }), 50));
  });

  it("stores, reuses and evicts within the pool, on the rank and with the adapter asked for", () => {
    const source = new EngineEventSource({
      blockSize: 4,
      numGpuBlocks: 64,
      seed: 5,
      dataParallelRank: 2,
      loraName: "a",
    });
    const seen = { stored: 0, removed: 0, withParent: 0 };
    for (const batch of take(source, 400)) {
      expect(batch.dataParallelRank).toBe(2);
      expect(batch.events.length).toBeGreaterThan(0);
      for (const e of batch.events) {
        if (e.type === "BlockStored") {
          seen.stored += e.blockHashes.length;
          if (e.parentBlockHash !== null) seen.withParent++;
          expect(e.loraName).toBe("a");
          expect(e.tokenIds).toHaveLength(e.blockHashes.length * 4);
        } else if (e.type === "BlockRemoved") seen.removed += e.blockHashes.length;
      }
      expect(source.cachedBlocks).toBeLessThanOrEqual(64);
    }
    expect(seen.stored).toBeGreaterThan(200);
    expect(seen.removed).toBeGreaterThan(100);
    expect(seen.withParent).toBeGreaterThan(50);
  });

  it("resets its cache: the batch ends with AllBlocksCleared, nothing stays cached, and later stores start at block 0", () => {
    const source = new EngineEventSource({ blockSize: 4, numGpuBlocks: 64, seed: 6 });
    take(source, 80);
    const clear = source.clearCache(12.5);
    expect(clear.ts).toBe(12.5);
    expect(clear.events.at(-1)).toEqual({ type: "AllBlocksCleared" });
    expect(source.cachedBlocks).toBe(0);
    expect(source.nextBatch().events[0]).toMatchObject({ type: "BlockStored", parentBlockHash: null });
  });
});
