import { IdPool, U64Table, resized } from "@dynamo/primitives";

/**
 * What one worker rank's translator knows of the blocks the engine holds: engine block hash → router
 * local hash, parent engine hash, and the storage tiers holding the block (a bit per tier). Lets a
 * `BlockStored` without token ids (a lower tier announcing blocks the engine stored with their tokens
 * before) be given the router hashes and the parents of those blocks.
 *
 * A `U64Table` maps each engine hash to an entry; entries live column-wise in typed arrays (halves of
 * the local and parent hashes, flags) and are reused through a free list. The u64 hashes are split
 * through an 8-byte scratch, so recording a block needs no BigInt arithmetic or allocation.
 */

const TIER_BITS = 0x0f;
const HAS_PARENT = 0x80;
const NONE = -1;

const scratch64 = new BigUint64Array(1);
const scratch32 = new Int32Array(scratch64.buffer);

export class EngineBlocks {
  private readonly entries = new U64Table(64);
  private localLo = new Int32Array(64);
  private localHi = new Int32Array(64);
  private parentLo = new Int32Array(64);
  private parentHi = new Int32Array(64);
  private flags = new Int32Array(64);
  private readonly ids = new IdPool((capacity) => this.grow(capacity), 64);

  /** Blocks remembered. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Records the run `blockHashes[0..tokensHashes.length)` stored under `parent` (null: from block 0),
   * with router hashes `tokensHashes`, as held in the tier of `tierBit`.
   */
  addStored(
    blockHashes: readonly bigint[],
    parent: bigint | null,
    tokensHashes: BigUint64Array,
    tierBit: number,
  ): void {
    for (let i = 0; i < tokensHashes.length; i++) {
      scratch64[0] = blockHashes[i]!;
      const lo = scratch32[0]!;
      const hi = scratch32[1]!;
      let entry = this.entries.get(0, lo, hi);
      if (entry === NONE) {
        entry = this.ids.allocate();
        this.entries.set(0, lo, hi, entry);
        this.flags[entry] = 0;
      }
      scratch64[0] = tokensHashes[i]!;
      this.localLo[entry] = scratch32[0]!;
      this.localHi[entry] = scratch32[1]!;
      const parentOf = i === 0 ? parent : blockHashes[i - 1]!;
      let flags = (this.flags[entry]! & TIER_BITS) | tierBit;
      if (parentOf !== null) {
        scratch64[0] = parentOf;
        this.parentLo[entry] = scratch32[0]!;
        this.parentHi[entry] = scratch32[1]!;
        flags |= HAS_PARENT;
      }
      this.flags[entry] = flags;
    }
  }

  /** Entry of a remembered block, or -1. */
  find(blockHash: bigint): number {
    scratch64[0] = blockHash;
    return this.entries.get(0, scratch32[0]!, scratch32[1]!);
  }

  /** Router local hash of the block in `entry`. */
  localHash(entry: number): bigint {
    scratch32[0] = this.localLo[entry]!;
    scratch32[1] = this.localHi[entry]!;
    return scratch64[0]!;
  }

  /** Parent engine hash of the block in `entry` (null: it starts a sequence). */
  parent(entry: number): bigint | null {
    if ((this.flags[entry]! & HAS_PARENT) === 0) return null;
    scratch32[0] = this.parentLo[entry]!;
    scratch32[1] = this.parentHi[entry]!;
    return scratch64[0]!;
  }

  /** Marks the block in `entry` as held in the tier of `tierBit` too. */
  markTier(entry: number, tierBit: number): void {
    this.flags[entry] = this.flags[entry]! | tierBit;
  }

  /** The blocks left the tier of `tierBit`; a block held in no tier any more is forgotten. */
  remove(blockHashes: readonly bigint[], tierBit: number): void {
    for (const hash of blockHashes) {
      scratch64[0] = hash;
      const lo = scratch32[0]!;
      const hi = scratch32[1]!;
      const entry = this.entries.get(0, lo, hi);
      if (entry === NONE) continue;
      this.flags[entry] = this.flags[entry]! & ~tierBit;
      if ((this.flags[entry]! & TIER_BITS) !== 0) continue;
      this.entries.delete(0, lo, hi);
      this.ids.release(entry);
    }
  }

  clear(): void {
    if (this.entries.size === 0) return;
    this.entries.clear();
    this.ids.reset();
  }

  private grow(capacity: number): void {
    this.localLo = resized(this.localLo, capacity);
    this.localHi = resized(this.localHi, capacity);
    this.parentLo = resized(this.parentLo, capacity);
    this.parentHi = resized(this.parentHi, capacity);
    this.flags = resized(this.flags, capacity);
  }
}
