import { seededRng } from "@dynamo/primitives";
import type { VllmEventBatch, VllmKvEvent } from "./codec.js";

/** Options of `SyntheticVllmWorker`. */
export interface SyntheticVllmWorkerOptions {
  /** Engine block size (tokens per block). */
  readonly blockSize: number;
  /** Blocks the simulated prefix cache holds before evicting. Default 4 096. */
  readonly capacityBlocks?: number;
  /** Events per batch (vLLM sends one batch per scheduling step). Default 8. */
  readonly eventsPerBatch?: number;
  /** Largest run of new blocks per `BlockStored`. Default 8. */
  readonly maxBlocksPerStore?: number;
  /** Probability that a store extends a cached block instead of starting at block 0. Default 0.7. */
  readonly extendProbability?: number;
  /** PRNG seed (same seed, same stream). Default 1. */
  readonly seed?: number;
  readonly dataParallelRank?: number | null;
  readonly loraName?: string | null;
  readonly medium?: string | null;
}

interface CachedBlock {
  readonly parent: bigint | null;
  children: number;
}

/**
 * A deterministic stand-in for a vLLM engine's KV-event stream: stores that start at block 0 or extend
 * cached blocks, lazy removals of the least recently stored leaf blocks once the cache is full (so every
 * removal is valid), and on demand a cache reset (`clearCache`). Engine hashes are spread over the whole
 * u64 range.
 */
export class SyntheticVllmWorker {
  private readonly blocks = new Map<bigint, CachedBlock>();
  /** Cached hashes, for picking a random parent. */
  private readonly hashes: bigint[] = [];
  private readonly positions = new Map<bigint, number>();
  /** Blocks without cached children, oldest first: eviction candidates. */
  private readonly leaves = new Map<bigint, true>();
  private readonly random: () => number;
  private counter = 0n;
  private pendingRemovals: bigint[] = [];

  constructor(private readonly options: SyntheticVllmWorkerOptions) {
    this.random = seededRng(options.seed ?? 1);
  }

  /** Blocks currently cached. */
  get cachedBlocks(): number {
    return this.blocks.size;
  }

  /** The next batch of events. */
  nextBatch(ts = 0): VllmEventBatch {
    const events: VllmKvEvent[] = [];
    const perBatch = this.options.eventsPerBatch ?? 8;
    while (events.length < perBatch) {
      if (this.pendingRemovals.length > 0) {
        events.push({ type: "BlockRemoved", blockHashes: this.pendingRemovals, medium: this.options.medium ?? "GPU" });
        this.pendingRemovals = [];
      } else {
        events.push(this.store());
        this.evictOverCapacity();
      }
    }
    return { ts, events, dataParallelRank: this.options.dataParallelRank ?? null };
  }

  /**
   * Resets the prefix cache like vLLM's `reset_prefix_cache`: every cached block is forgotten (no
   * `BlockRemoved` for them, evictions still pending included) and the returned batch holds one
   * `AllBlocksCleared`. Later stores start from block 0 again.
   */
  clearCache(ts = 0): VllmEventBatch {
    this.blocks.clear();
    this.hashes.length = 0;
    this.positions.clear();
    this.leaves.clear();
    this.pendingRemovals = [];
    return { ts, events: [{ type: "AllBlocksCleared" }], dataParallelRank: this.options.dataParallelRank ?? null };
  }

  private store(): VllmKvEvent {
    const bs = this.options.blockSize;
    const extend = this.hashes.length > 0 && this.random() < (this.options.extendProbability ?? 0.7);
    const parent = extend ? this.hashes[Math.floor(this.random() * this.hashes.length)]! : null;
    const count = 1 + Math.floor(this.random() * (this.options.maxBlocksPerStore ?? 8));
    const blockHashes: bigint[] = [];
    const tokenIds: number[] = new Array<number>(count * bs);
    for (let i = 0; i < tokenIds.length; i++) tokenIds[i] = Math.floor(this.random() * 150_000);
    let previous = parent;
    for (let i = 0; i < count; i++) {
      const hash = this.freshHash();
      this.add(hash, previous);
      blockHashes.push(hash);
      previous = hash;
    }
    return {
      type: "BlockStored",
      blockHashes,
      parentBlockHash: parent,
      tokenIds,
      blockSize: bs,
      loraId: null,
      medium: this.options.medium ?? "GPU",
      loraName: this.options.loraName ?? null,
    };
  }

  private add(hash: bigint, parent: bigint | null): void {
    this.blocks.set(hash, { parent, children: 0 });
    this.positions.set(hash, this.hashes.length);
    this.hashes.push(hash);
    this.leaves.set(hash, true);
    if (parent !== null) {
      this.blocks.get(parent)!.children++;
      this.leaves.delete(parent);
    }
  }

  private evictOverCapacity(): void {
    const capacity = this.options.capacityBlocks ?? 4096;
    while (this.blocks.size > capacity) {
      const victim = this.leaves.keys().next().value!;
      this.leaves.delete(victim);
      const block = this.blocks.get(victim)!;
      this.blocks.delete(victim);
      const at = this.positions.get(victim)!;
      const last = this.hashes.pop()!;
      if (last !== victim) {
        this.hashes[at] = last;
        this.positions.set(last, at);
      }
      this.positions.delete(victim);
      if (block.parent !== null) {
        const parent = this.blocks.get(block.parent)!;
        if (--parent.children === 0) this.leaves.set(block.parent, true);
      }
      this.pendingRemovals.push(victim);
    }
  }

  /** splitmix64 of a counter: distinct, well spread over the u64 range (half of them above 2^63). */
  private freshHash(): bigint {
    this.counter++;
    let z = BigInt.asUintN(64, (BigInt(this.options.seed ?? 1) << 32n) + this.counter * 0x9e3779b97f4a7c15n);
    z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
    z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
    return z ^ (z >> 31n);
  }
}
