import { createEvictor, type Evictor } from "./eviction.js";
import { SlotIndex } from "./slot-index.js";
import type { EvictionPolicy } from "./types.js";

/** No block (or no parent). */
export const NO_BLOCK = -1;

/** A full block the pool holds in its prefix cache. */
export interface CachedBlock {
  readonly hash: bigint;
  /** Hash of the block before it in its sequence; null at block 0. */
  readonly parentHash: bigint | null;
  /** Requests using it (0: cached only). */
  readonly refCount: number;
}

/**
 * Paged KV blocks with prefix caching. Every slot is free, active (used by `refCount` ≥ 1 requests) or
 * inactive (a full block nobody uses, kept for reuse: the prefix cache). Full blocks are identified by
 * their hash; an inactive block is found by `lookup` and reused with `acquire`. Allocation takes a free
 * slot, else evicts an inactive block (reported through `onEvict`, as vLLM reports removals lazily when a
 * slot is reused); with nothing to evict it fails. Active blocks are never evicted.
 *
 * Eviction order: `lru` evicts the block released longest ago; `lineage` evicts the least recently
 * released *leaf* (a cached block no cached block continues), so a chain is cut from its end and shared
 * prefixes outlive the suffixes built on them.
 */
export class BlockPool {
  readonly capacity: number;
  private readonly refCount: Int32Array;
  private readonly hashed: Uint8Array;
  private readonly hashOf: BigUint64Array;
  private readonly byHash: SlotIndex;
  private readonly parentHashOf: BigUint64Array;
  private readonly hasParent: Uint8Array;
  /** Lineage only: parent slot and number of cached children. */
  private readonly parent: Int32Array | null;
  private readonly children: Int32Array | null;
  /** When each slot was last released (orders eviction). */
  private readonly releasedAt: Float64Array;
  private readonly freeSlots: Int32Array;
  private freeTop: number;
  private readonly evictor: Evictor;
  private readonly scratch = new BigUint64Array(1);
  private readonly scratchWords = new Int32Array(this.scratch.buffer);
  private releaseTick = 0;
  private activeCount = 0;
  private hashedCount = 0;
  private inactiveCount = 0;

  constructor(
    capacity: number,
    policy: EvictionPolicy,
    private readonly onEvict: (slot: number) => void,
  ) {
    this.capacity = capacity;
    this.refCount = new Int32Array(capacity);
    this.hashed = new Uint8Array(capacity);
    this.hashOf = new BigUint64Array(capacity);
    this.byHash = new SlotIndex(capacity, new Int32Array(this.hashOf.buffer));
    this.parentHashOf = new BigUint64Array(capacity);
    this.hasParent = new Uint8Array(capacity);
    const lineage = policy === "lineage";
    this.parent = lineage ? new Int32Array(capacity).fill(NO_BLOCK) : null;
    this.children = lineage ? new Int32Array(capacity) : null;
    this.releasedAt = new Float64Array(capacity);
    this.freeSlots = new Int32Array(capacity);
    for (let i = 0; i < capacity; i++) this.freeSlots[i] = capacity - 1 - i;
    this.freeTop = capacity;
    this.evictor = createEvictor(policy, capacity);
  }

  /** Blocks used by at least one request. */
  get active(): number {
    return this.activeCount;
  }

  /** Full blocks in the prefix cache that nobody uses. */
  get cachedInactive(): number {
    return this.inactiveCount;
  }

  /** Full blocks in the prefix cache (used or not). */
  get cached(): number {
    return this.hashedCount;
  }

  /** Slots an allocation can still obtain: free ones plus evictable ones. */
  get available(): number {
    return this.capacity - this.activeCount;
  }

  /** The slot holding the full block `hash`, or `NO_BLOCK`. */
  lookup(hash: bigint): number {
    this.scratch[0] = hash;
    return this.byHash.find(this.scratchWords[0]!, this.scratchWords[1]!);
  }

  /** Hash of a full block's slot. */
  hashAt(slot: number): bigint {
    return this.hashOf[slot]!;
  }

  refCountOf(slot: number): number {
    return this.refCount[slot]!;
  }

  /** One more user of a cached block (a cache hit); an inactive block becomes active again. */
  acquire(slot: number): void {
    if (this.refCount[slot]!++ === 0) {
      this.activeCount++;
      this.inactiveCount--;
      this.evictor.remove(slot);
    }
  }

  /** A fresh, unhashed slot with one user; `NO_BLOCK` when every slot is active. */
  allocate(): number {
    let slot: number;
    if (this.freeTop > 0) {
      slot = this.freeSlots[--this.freeTop]!;
    } else {
      slot = this.evictor.pop();
      if (slot === NO_BLOCK) return NO_BLOCK;
      this.onEvict(slot);
      this.forget(slot);
    }
    this.refCount[slot] = 1;
    this.activeCount++;
    return slot;
  }

  /** One user fewer; at zero a full block stays cached (evictable), a partial one is freed. */
  release(slot: number): void {
    if (--this.refCount[slot]! > 0) return;
    this.activeCount--;
    if (!this.hashed[slot]) {
      this.freeSlots[this.freeTop++] = slot;
      return;
    }
    this.inactiveCount++;
    const tick = ++this.releaseTick;
    this.releasedAt[slot] = tick;
    if (this.children === null || this.children[slot] === 0) this.evictor.add(slot, tick);
  }

  /**
   * Marks the active, unhashed block `slot` full with `hash`, continuing `parentSlot` (`NO_BLOCK` at
   * block 0). The hash must not be cached already (`lookup` first: a duplicate is deduplicated by the
   * caller, which switches to the existing block).
   */
  commit(slot: number, hash: bigint, parentSlot: number): void {
    this.hashed[slot] = 1;
    this.hashOf[slot] = hash;
    this.hashedCount++;
    this.byHash.insert(slot);
    if (parentSlot === NO_BLOCK) {
      this.hasParent[slot] = 0;
      return;
    }
    this.hasParent[slot] = 1;
    this.parentHashOf[slot] = this.hashOf[parentSlot]!;
    if (this.parent !== null) {
      this.parent[slot] = parentSlot;
      this.children![parentSlot]!++;
    }
  }

  /** Drops every cached block; only possible when no block is in use (returns false otherwise). */
  reset(): boolean {
    if (this.activeCount > 0) return false;
    while (this.evictor.pop() !== NO_BLOCK);
    for (let slot = 0; slot < this.capacity; slot++) {
      if (!this.hashed[slot]) continue;
      this.hashed[slot] = 0;
      if (this.parent !== null) {
        this.parent[slot] = NO_BLOCK;
        this.children![slot] = 0;
      }
      this.freeSlots[this.freeTop++] = slot;
    }
    this.byHash.clear();
    this.hashedCount = 0;
    this.inactiveCount = 0;
    return true;
  }

  /** Every full block in the prefix cache (used or not). */
  *cachedBlocks(): IterableIterator<CachedBlock> {
    for (let slot = 0; slot < this.capacity; slot++) {
      if (!this.hashed[slot]) continue;
      yield {
        hash: this.hashOf[slot]!,
        parentHash: this.hasParent[slot] ? this.parentHashOf[slot]! : null,
        refCount: this.refCount[slot]!,
      };
    }
  }

  /** An evicted block leaves the cache; with lineage its parent may become a leaf, hence a candidate. */
  private forget(slot: number): void {
    this.byHash.remove(slot);
    this.hashed[slot] = 0;
    this.hashedCount--;
    this.inactiveCount--;
    if (this.parent === null) return;
    const parent = this.parent[slot]!;
    this.parent[slot] = NO_BLOCK;
    this.children![slot] = 0;
    if (parent === NO_BLOCK) return;
    if (--this.children![parent]! === 0 && this.refCount[parent] === 0 && this.hashed[parent])
      this.evictor.add(parent, this.releasedAt[parent]!);
  }
}
