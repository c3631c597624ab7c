import type { BlockHasher } from "./block-hash.js";
import { BlockPool, NO_BLOCK } from "./block-pool.js";
import { EventBuffer } from "./event-buffer.js";
import type { Sequence } from "./sequence.js";

/**
 * Sequences ↔ pool blocks: prefix lookup, allocation with a capacity check, caching of blocks that
 * became full (deduplicated, announced with `BlockStored` runs), freeing. Without prefix caching no
 * block is ever hashed, reused or announced.
 */
export class KvCache {
  readonly pool: BlockPool;
  /** Blocks that entered the prefix cache. */
  storedBlocks = 0;
  /** Cached blocks evicted. */
  removedBlocks = 0;

  constructor(
    readonly blockSize: number,
    capacity: number,
    eviction: "lineage" | "lru",
    private readonly prefixCaching: boolean,
    private readonly hasher: BlockHasher,
    readonly events: EventBuffer,
  ) {
    this.pool = new BlockPool(capacity, eviction, (slot) => {
      this.removedBlocks++;
      if (events.enabled) events.removed(this.pool.hashAt(slot));
    });
  }

  /** Blocks needed to hold `tokens` tokens. */
  blocksFor(tokens: number): number {
    return Math.ceil(tokens / this.blockSize);
  }

  /**
   * Slots of the longest cached prefix of the sequence's full blocks, short of its last token (that one is
   * always computed, as in vLLM). Hashes the blocks it looks at.
   */
  cachedPrefix(seq: Sequence): number[] {
    if (!this.prefixCaching) return [];
    const limit = Math.floor((seq.numTokens - 1) / this.blockSize);
    const hits: number[] = [];
    for (let i = 0; i < limit; i++) {
      const slot = this.pool.lookup(seq.blockHash(i, this.hasher, this.blockSize));
      if (slot === NO_BLOCK) break;
      hits.push(slot);
    }
    return hits;
  }

  /**
   * Gives a sequence with no blocks the cached prefix `hits` and fresh blocks up to `tokens` tokens,
   * provided `reserve` slots stay available afterwards (inactive hits count: reusing them takes them out
   * of the evictable pool). Returns false and changes nothing otherwise.
   */
  admit(seq: Sequence, hits: readonly number[], tokens: number, reserve: number): boolean {
    const fresh = this.blocksFor(tokens) - hits.length;
    let reactivated = 0;
    for (const slot of hits) if (this.pool.refCountOf(slot) === 0) reactivated++;
    if (fresh + reactivated > this.pool.available - reserve) return false;
    for (const slot of hits) this.pool.acquire(slot);
    seq.blocks = hits.slice();
    seq.numCommitted = hits.length;
    for (let i = 0; i < fresh; i++) seq.blocks.push(this.pool.allocate());
    return true;
  }

  /** Grows the sequence's blocks to hold `tokens` tokens; false when the pool is exhausted (blocks obtained so far are kept). */
  grow(seq: Sequence, tokens: number): boolean {
    const needed = this.blocksFor(tokens);
    while (seq.blocks.length < needed) {
      const slot = this.pool.allocate();
      if (slot === NO_BLOCK) return false;
      seq.blocks.push(slot);
    }
    return true;
  }

  /**
   * Caches the blocks that are full within the sequence's first `tokens` tokens. A block whose hash is
   * already cached is replaced by the cached one (its own slot is freed, nothing announced); the others
   * are announced as runs continuing the block before them.
   */
  commit(seq: Sequence, tokens: number): void {
    if (!this.prefixCaching) return;
    const full = Math.min(Math.floor(tokens / this.blockSize), seq.blocks.length);
    if (full <= seq.numCommitted) return;
    const pool = this.pool;
    const bs = this.blockSize;
    const announce = this.events.enabled;
    let runHashes: bigint[] = [];
    let runTokens: number[] = [];
    let runParent: bigint | null = null;
    for (let i = seq.numCommitted; i < full; i++) {
      const hash = seq.blockHash(i, this.hasher, bs);
      const existing = pool.lookup(hash);
      if (existing !== NO_BLOCK) {
        pool.acquire(existing);
        pool.release(seq.blocks[i]!);
        seq.blocks[i] = existing;
        if (runHashes.length > 0) {
          this.events.stored(runParent, runHashes, runTokens, seq.loraName);
          runHashes = [];
          runTokens = [];
        }
        continue;
      }
      pool.commit(seq.blocks[i]!, hash, i > 0 ? seq.blocks[i - 1]! : NO_BLOCK);
      this.storedBlocks++;
      if (!announce) continue;
      if (runHashes.length === 0) runParent = i > 0 ? seq.blockHash(i - 1, this.hasher, bs) : null;
      runHashes.push(hash);
      seq.copyTokens(i * bs, (i + 1) * bs, runTokens);
    }
    if (runHashes.length > 0) this.events.stored(runParent, runHashes, runTokens, seq.loraName);
    seq.numCommitted = full;
  }

  /** Releases every block of the sequence, last block first (so a chain's end is evicted before its start). */
  free(seq: Sequence): void {
    const blocks = seq.blocks;
    for (let i = blocks.length - 1; i >= 0; i--) this.pool.release(blocks[i]!);
    seq.blocks = [];
    seq.numCommitted = 0;
  }

  /** Drops the whole prefix cache (only when no block is in use) and announces it. */
  reset(): boolean {
    if (!this.pool.reset()) return false;
    if (this.events.enabled) this.events.cleared();
    return true;
  }
}
