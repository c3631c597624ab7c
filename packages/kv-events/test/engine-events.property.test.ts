import {
  EngineWorker,
  VirtualLoop,
  playWorkload,
  type Engine,
  type KvEventBatch,
  type WorkloadOp,
} from "@dynamo/engine-sim";
import { RadixIndex } from "@dynamo/kv-indexer";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { VllmEventTranslator, encodeVllmEventBatch, type VllmEventBatch } from "../src/index.js";

const WORKER = 7n;

// Engine batches are the codec's type as they are (checked at compile time).
const asCodecBatch = (batch: KvEventBatch): VllmEventBatch => batch;

const config = fc.record({
  blockSize: fc.constantFrom(2, 4),
  numGpuBlocks: fc.integer({ min: 12, max: 48 }),
  eviction: fc.constantFrom("lineage" as const, "lru" as const),
  preemptionMode: fc.constantFrom("lifo" as const, "fifo" as const),
  blockHash: fc.constantFrom("sha256_cbor" as const, "xxh3" as const),
  maxNumBatchedTokens: fc.constantFrom(6, 16, 64),
  maxNumSeqs: fc.constantFrom(2, 8),
  maxLoras: fc.constantFrom(1, 2),
  watermark: fc.constantFrom(0, 0.1),
  disaggregationMode: fc.constantFrom("agg" as const, "agg" as const, "decode" as const, "prefill" as const),
  dataParallelSize: fc.constantFrom(1, 2),
  eventEncoding: fc.constantFrom("array" as const, "map" as const),
});

// Prompts share a few prefixes, so that hits, deduplication and eviction of shared blocks all happen.
const PREFIXES = [[], [1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 9, 9, 9, 9, 9, 9], [50, 51, 52, 53, 54, 55]];

const op: fc.Arbitrary<WorkloadOp> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc
      .record({
        dt: fc.integer({ min: 0, max: 60 }),
        prefix: fc.integer({ min: 0, max: PREFIXES.length - 1 }),
        suffix: fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 12 }),
        maxTokens: fc.integer({ min: 1, max: 12 }),
        lora: fc.constantFrom(null, null, "a", "b"),
      })
      .map(({ prefix, suffix, ...o }) => ({
        kind: "arrive" as const,
        tokens: [...PREFIXES[prefix]!, ...suffix],
        ...o,
      })),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("cancel" as const), dt: fc.integer({ min: 0, max: 60 }), pick: fc.nat() }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("reset" as const),
      dt: fc.integer({ min: 0, max: 200 }),
      rank: fc.nat(1),
    }),
  },
);

/** Engine hash → parent hash of every block the index holds for one rank. */
function indexBlocks(index: RadixIndex, rank: number): Map<bigint, bigint | null> {
  const out = new Map<bigint, bigint | null>();
  for (const e of index.dump()) {
    if (e.workerId !== WORKER || e.dpRank !== rank || e.data.type !== "stored") continue;
    out.set(e.data.blockHashes[0]!, e.data.parentHash);
  }
  return out;
}

function poolBlocks(engine: Engine): Map<bigint, bigint | null> {
  return new Map([...engine.cachedBlocks()].map((b) => [b.hash, b.parentHash]));
}

describe("a simulated engine's KV events, through the vLLM codec and translator into the router's index", () => {
  it("always equal the engine's cached blocks", () => {
    const seen = { checks: 0, removed: 0, hits: 0, preemptions: 0, cleared: 0, cancelled: 0, loraBlocks: 0 };
    fc.assert(
      fc.property(config, fc.array(op, { minLength: 1, maxLength: 40 }), (c, ops) => {
        const loop = new VirtualLoop();
        const index = new RadixIndex();
        const warnings: string[] = [];
        const log = (line: string) => warnings.push(line);
        const translators = [0, 1].map(
          (dpRank) => new VllmEventTranslator({ workerId: WORKER, dpRank, blockSize: c.blockSize, log }),
        );
        let worker: EngineWorker | undefined = undefined;
        const onKvEvents = (batch: KvEventBatch) => {
          const payload = encodeVllmEventBatch(asCodecBatch(batch), { eventEncoding: c.eventEncoding });
          for (const event of translators[batch.dataParallelRank]!.translatePayload(payload)) index.apply(event);
          const engine = worker!.ranks[batch.dataParallelRank]!;
          expect(indexBlocks(index, engine.rank)).toEqual(poolBlocks(engine));
          seen.checks++;
          for (const e of batch.events) {
            if (e.type === "AllBlocksCleared") seen.cleared++;
            else if (e.type === "BlockStored" && e.loraName !== null) seen.loraBlocks += e.blockHashes.length;
          }
        };
        worker = new EngineWorker({ ...c, onKvEvents }, loop.clock);
        loop.add(...worker.ranks);
        playWorkload(loop, worker, ops);
        loop.runUntilIdle();
        for (const engine of worker.ranks) {
          const stats = engine.stats();
          seen.removed += stats.removedBlocks;
          seen.hits += stats.prefixCacheHits;
          seen.preemptions += stats.preemptions;
          seen.cancelled += stats.cancelled;
          expect(engine.unfinished).toBe(0);
          expect(engine.load().activeBlocks).toBe(0);
          expect(indexBlocks(index, engine.rank)).toEqual(poolBlocks(engine));
        }
        for (const tr of translators) expect(Object.values(tr.issues).every((n) => n === 0)).toBe(true);
        expect(warnings).toEqual([]);
        expect(index.errorCounts).toEqual({
          parent_not_found: 0,
          block_not_found: 0,
          invalid_block_sequence: 0,
          invalid_event: 0,
        });
      }),
      { numRuns: 300 },
    );
    // The workloads exercised every way the cache changes.
    for (const [what, count] of Object.entries(seen)) expect(count, what).toBeGreaterThan(0);
  });
});
