import { EngineEventSource, type KvEventBatch } from "@dynamo/engine-sim";
import { RadixIndex } from "@dynamo/kv-indexer";
import { expect, it } from "vitest";
import { VllmEventTranslator } from "../src/index.js";

const NO_ERRORS = { parent_not_found: 0, block_not_found: 0, invalid_block_sequence: 0, invalid_event: 0 };

function run(seed: number, batches: number): KvEventBatch[] {
  const source = new EngineEventSource({ blockSize: 4, numGpuBlocks: 64, seed });
  return Array.from({ length: batches }, () => source.nextBatch());
}

function indexOf(blockSize: number) {
  const translator = new VllmEventTranslator({ workerId: 1n, dpRank: 0, blockSize });
  const index = new RadixIndex();
  const apply = (batch: KvEventBatch) => {
    for (const event of translator.translateBatch({ ...batch, unknownEvents: 0, invalidEvents: 0 })) index.apply(event);
  };
  return { index, apply };
}

it("an engine's event stream is deterministic per seed and different across seeds", () => {
  expect(run(1, 20)).toEqual(run(1, 20));
  expect(run(1, 20)).not.toEqual(run(2, 20));
});

it("an engine's event stream applies to a fresh index without errors, bounded by the engine's capacity, with hashes above 2^63", () => {
  const source = new EngineEventSource({ blockSize: 4, numGpuBlocks: 64, seed: 9 });
  const { index, apply } = indexOf(4);
  let removals = 0;
  let high = 0;
  for (let i = 0; i < 300; i++) {
    const batch = source.nextBatch(i);
    expect(batch.ts).toBe(i);
    expect(batch.events.length).toBeGreaterThan(0);
    for (const e of batch.events) {
      if (e.type === "BlockRemoved") removals += e.blockHashes.length;
      if (e.type !== "AllBlocksCleared") high += e.blockHashes.filter((h) => h >= 1n << 63n).length;
    }
    apply(batch);
    expect(source.cachedBlocks).toBeLessThanOrEqual(64);
  }
  expect(removals).toBeGreaterThan(100);
  expect(high).toBeGreaterThan(100);
  expect(index.errorCounts).toEqual(NO_ERRORS);
  expect(index.size).toBeGreaterThan(30);
  expect(index.size).toBeLessThanOrEqual(64);
});

it("a prefix-cache reset ends with AllBlocksCleared, after which stores start from block 0 and the stream stays valid", () => {
  const source = new EngineEventSource({ blockSize: 4, numGpuBlocks: 64, seed: 4 });
  const { index, apply } = indexOf(4);
  for (let i = 0; i < 60; i++) apply(source.nextBatch());
  expect(index.size).toBeGreaterThan(30);
  const clear = source.clearCache(7);
  expect(clear.ts).toBe(7);
  expect(clear.events.at(-1)).toEqual({ type: "AllBlocksCleared" });
  expect(source.cachedBlocks).toBe(0);
  apply(clear);
  expect(index.size).toBe(0);
  const next = source.nextBatch();
  expect(next.events[0]).toMatchObject({ type: "BlockStored", parentBlockHash: null });
  expect(next.events.some((e) => e.type === "BlockRemoved")).toBe(false);
  apply(next);
  for (let i = 0; i < 60; i++) apply(source.nextBatch());
  expect(index.size).toBeGreaterThan(30);
  expect(index.errorCounts).toEqual(NO_ERRORS);
});
