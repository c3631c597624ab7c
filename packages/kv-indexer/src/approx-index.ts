import type { WorkerRank } from "./events.js";
import { ExpiryHeap } from "./expiry-heap.js";
import { IdPool, U64Table, resized } from "@dynamo/primitives";
import { computeSequenceHashes } from "./hashing.js";
import type { OverlapScores, OverlapSource } from "./index-api.js";
import { findOverlap } from "./overlap-scores.js";
import { PrefixTree } from "./prefix-tree.js";
import { HalvesScratch } from "./u64-halves.js";
import { WorkerSlots } from "./worker-slots.js";

export interface ApproxIndexOptions {
  /** Lifetime of a recorded block, refreshed whenever a request routed to that rank contains it. Default 120 000 ms. */
  ttlMs?: number;
  /** Entry count above which the index is pruned. Default 2^20. */
  maxEntries?: number;
  /** Pruning stops at `pruneTargetRatio × maxEntries` entries. Default 0.8. */
  pruneTargetRatio?: number;
  /** Clock in milliseconds. Default `Date.now`. */
  now?: () => number;
}

const NONE = -1;
// The heap is rebuilt from the live entries when it holds more than this many times as many items.
const STALE_FACTOR = 2;
const MIN_REBUILD = 1024;

/**
 * Approximate prefix index for routing without KV events: every routing decision is recorded as
 * synthetic blocks of the chosen worker rank (keyed by the router's sequence hashes), each with a TTL.
 * Expired blocks are dropped through a min-heap with lazy deletion; when the index grows past
 * `maxEntries`, the earliest-expiring entries (deepest first among equal expiries) are pruned down to
 * `pruneTargetRatio × maxEntries`.
 */
export class ApproxIndex implements OverlapSource {
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly pruneTarget: number;
  private readonly now: () => number;

  private readonly tree = new PrefixTree();
  private readonly slots = new WorkerSlots();
  private readonly heap = new ExpiryHeap();
  private readonly sequenceScratch = new HalvesScratch();
  private readonly localScratch = new HalvesScratch();
  /** (slot, sequence hash) → entry id. */
  private readonly entryIds = new U64Table(1024);
  private expiry = new Float64Array(1024);
  private position = new Int32Array(1024);
  private entrySlot = new Int32Array(1024);
  private seqLo = new Int32Array(1024);
  private seqHi = new Int32Array(1024);
  private generation = new Int32Array(1024);
  private readonly ids = new IdPool((capacity) => this.growEntries(capacity), 1024);
  private live = 0;

  constructor(options: ApproxIndexOptions = {}) {
    this.ttlMs = options.ttlMs ?? 120_000;
    this.maxEntries = options.maxEntries ?? 2 ** 20;
    this.pruneTarget = Math.floor(this.maxEntries * (options.pruneTargetRatio ?? 0.8));
    this.now = options.now ?? Date.now;
  }

  /** Live (worker rank, block) entries. */
  get size(): number {
    return this.live;
  }

  /** Records that a request with these local block hashes was routed to `worker`. */
  recordRouting(worker: WorkerRank, localHashes: BigUint64Array): void {
    const now = this.now();
    this.expireAt(now);
    const count = localHashes.length;
    if (count === 0) return;
    const slot = this.slots.acquire(worker.workerId, worker.dpRank);
    const sequence = this.sequenceScratch.load(computeSequenceHashes(localHashes));
    this.tree.storeRun(slot, false, 0, 0, sequence, this.localScratch.load(localHashes), 0, count);
    const expiry = now + this.ttlMs;
    for (let i = 0; i < this.tree.lastStoreApplied; i++)
      this.touch(slot, sequence[2 * i]!, sequence[2 * i + 1]!, i, expiry);
    if (this.live > this.maxEntries) this.prune();
    if (this.heap.size > STALE_FACTOR * this.live + MIN_REBUILD) this.rebuildHeap();
  }

  findMatches(localHashes: BigUint64Array): OverlapScores {
    this.expire();
    return findOverlap(this.tree, this.slots, this.localScratch, localHashes);
  }

  /** Drops expired entries; returns how many. */
  expire(): number {
    return this.expireAt(this.now());
  }

  /** Forgets every rank of a worker. */
  removeWorker(workerId: bigint): void {
    const gone = new Set(this.slots.slotsOf(workerId));
    if (gone.size === 0) return;
    for (let entry = 0; entry < this.ids.highWater; entry++) {
      if (gone.has(this.entrySlot[entry]!)) this.freeEntry(entry);
    }
    for (const slot of gone) {
      this.tree.closeSlot(slot);
      this.slots.release(slot);
    }
  }

  private expireAt(now: number): number {
    let dropped = 0;
    while (this.heap.size > 0 && this.heap.topExpiry <= now) {
      if (this.popLiveEntry()) dropped++;
    }
    return dropped;
  }

  private prune(): void {
    while (this.live > this.pruneTarget && this.heap.size > 0) this.popLiveEntry();
  }

  /** Pops the heap top; drops its entry when the item is current. */
  private popLiveEntry(): boolean {
    const heap = this.heap;
    const entry = heap.peekEntry();
    const current = this.generation[entry] === heap.peekGeneration() && this.expiry[entry] === heap.topExpiry;
    heap.pop();
    if (!current) return false;
    this.tree.remove(this.entrySlot[entry]!, this.seqLo[entry]!, this.seqHi[entry]!);
    this.freeEntry(entry);
    return true;
  }

  private touch(slot: number, lo: number, hi: number, position: number, expiry: number): void {
    let entry = this.entryIds.get(slot, lo, hi);
    if (entry === NONE) {
      entry = this.allocateEntry();
      this.entryIds.set(slot, lo, hi, entry);
      this.entrySlot[entry] = slot;
      this.seqLo[entry] = lo;
      this.seqHi[entry] = hi;
    }
    this.expiry[entry] = expiry;
    this.position[entry] = position;
    this.heap.push(expiry, position, entry, this.generation[entry]!);
  }

  private allocateEntry(): number {
    this.live++;
    return this.ids.allocate();
  }

  /** Forgets an entry; its heap items become stale. Slot -1 marks a free entry. */
  private freeEntry(entry: number): void {
    this.entryIds.delete(this.entrySlot[entry]!, this.seqLo[entry]!, this.seqHi[entry]!);
    this.entrySlot[entry] = NONE;
    this.generation[entry]!++;
    this.ids.release(entry);
    this.live--;
  }

  private rebuildHeap(): void {
    this.heap.rebuild((visit) => {
      for (let entry = 0; entry < this.ids.highWater; entry++) {
        if (this.entrySlot[entry] !== NONE)
          visit(this.expiry[entry]!, this.position[entry]!, entry, this.generation[entry]!);
      }
    });
  }

  private growEntries(capacity: number): void {
    this.expiry = resized(this.expiry, capacity);
    this.position = resized(this.position, capacity);
    this.entrySlot = resized(this.entrySlot, capacity);
    this.seqLo = resized(this.seqLo, capacity);
    this.seqHi = resized(this.seqHi, capacity);
    this.generation = resized(this.generation, capacity);
  }
}
