import { RadixIndex } from "@dynamo/kv-indexer";
import { expect, it } from "vitest";
import { SyntheticVllmWorker, VllmEventTranslator, type VllmEventBatch } from "../src/index.js";

function run(seed: number, batches: number): VllmEventBatch[] {
  const w = new SyntheticVllmWorker({ blockSize: 4, capacityBlocks: 64, eventsPerBatch: 5, seed });
  return Array.from({ length: batches }, () => w.nextBatch());
}

it("is deterministic per seed and different across seeds", () => {
  expect(run(1, 20)).toEqual(run(1, 20));
  expect(run(1, 20)).not.toEqual(run(2, 20));
});

it("produces a stream a fresh index applies without errors, bounded by the capacity, with hashes above 2^63", () => {
  const w = new SyntheticVllmWorker({ blockSize: 4, capacityBlocks: 64, eventsPerBatch: 5, seed: 9 });
  const t = new VllmEventTranslator({ workerId: 1n, dpRank: 0, blockSize: 4 });
  const index = new RadixIndex();
  let removals = 0;
  let high = 0;
  for (let i = 0; i < 300; i++) {
    const batch = w.nextBatch();
    expect(batch.events).toHaveLength(5);
    for (const e of batch.events) {
      if (e.type === "BlockRemoved") removals += e.blockHashes.length;
      if (e.type !== "AllBlocksCleared") high += e.blockHashes.filter((h) => h >= 1n << 63n).length;
    }
    for (const event of t.translateBatch({ ...batch, unknownEvents: 0, invalidEvents: 0 })) index.apply(event);
    expect(w.cachedBlocks).toBeLessThanOrEqual(64);
  }
  expect(removals).toBeGreaterThan(100);
  expect(high).toBeGreaterThan(100);
  expect(index.errorCounts).toEqual({
    parent_not_found: 0,
    block_not_found: 0,
    invalid_block_sequence: 0,
    invalid_event: 0,
  });
  // Evictions are announced lazily, in the next event: at most one store's worth (8 blocks) is still pending.
  expect(index.size - w.cachedBlocks).toBeGreaterThanOrEqual(0);
  expect(index.size - w.cachedBlocks).toBeLessThanOrEqual(8);
});

it("resets its cache on demand with an AllBlocksCleared, after which stores start from block 0 and the stream stays valid", () => {
  const w = new SyntheticVllmWorker({ blockSize: 4, capacityBlocks: 64, eventsPerBatch: 5, seed: 4 });
  const t = new VllmEventTranslator({ workerId: 1n, dpRank: 0, blockSize: 4 });
  const index = new RadixIndex();
  const apply = (batch: VllmEventBatch) => {
    for (const event of t.translateBatch({ ...batch, unknownEvents: 0, invalidEvents: 0 })) index.apply(event);
  };
  for (let i = 0; i < 40; i++) apply(w.nextBatch()); // full cache, evictions pending
  expect(index.size).toBeGreaterThan(50);
  const clear = w.clearCache(7);
  expect(clear).toEqual({ ts: 7, events: [{ type: "AllBlocksCleared" }], dataParallelRank: null });
  expect(w.cachedBlocks).toBe(0);
  apply(clear);
  expect(index.size).toBe(0);
  const next = w.nextBatch();
  expect(next.events[0]).toMatchObject({ type: "BlockStored", parentBlockHash: null });
  expect(next.events.some((e) => e.type === "BlockRemoved")).toBe(false);
  apply(next);
  for (let i = 0; i < 40; i++) apply(w.nextBatch());
  expect(index.size).toBeGreaterThan(50);
  expect(index.errorCounts).toEqual({
    parent_not_found: 0,
    block_not_found: 0,
    invalid_block_sequence: 0,
    invalid_event: 0,
  });
});
