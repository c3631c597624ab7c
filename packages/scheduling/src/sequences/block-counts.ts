import { IdPool, U64Table, resized } from "@dynamo/primitives";

/**
 * Reference-counted set of block identities for one worker rank: a `U64Table` from the block's 64-bit
 * hash (as int32 halves `lo`, `hi`) to an entry, entries column-wise in typed arrays (no object per
 * block). Each block also keeps the sum of its owners' serial numbers, so that when one owner is left,
 * that sum is its serial.
 */

const NONE = -1;

/** `add` result: the block is new (its only owner is the caller). */
export const ADDED_NEW = -1;
/** `remove` result: the block had no reference left and is gone. */
const REMOVED_LAST = -1;
/** `remove` result: the caller held no reference to that block. */
const NOT_FOUND = -2;

export class BlockCounts {
  private readonly entries = new U64Table();
  private count = new Int32Array(16);
  private ownerSum = new Float64Array(16);
  private readonly ids = new IdPool((capacity) => {
    this.count = resized(this.count, capacity);
    this.ownerSum = resized(this.ownerSum, capacity);
  });

  /** Number of distinct live blocks. */
  get size(): number {
    return this.entries.size;
  }

  has(lo: number, hi: number): boolean {
    return this.entries.get(0, lo, hi) !== NONE;
  }

  /**
   * Adds a reference by owner `serial`. Returns `ADDED_NEW` for a new block, the previous sole owner's
   * serial when the block goes from one owner to two, and 0 otherwise.
   */
  add(lo: number, hi: number, serial: number): number {
    const entry = this.entries.get(0, lo, hi);
    if (entry !== NONE) {
      const was = this.count[entry]!;
      this.count[entry] = was + 1;
      const previous = this.ownerSum[entry]!;
      this.ownerSum[entry] = previous + serial;
      return was === 1 ? previous : 0;
    }
    const fresh = this.ids.allocate();
    this.count[fresh] = 1;
    this.ownerSum[fresh] = serial;
    this.entries.set(0, lo, hi, fresh);
    return ADDED_NEW;
  }

  /**
   * Drops owner `serial`'s reference. Returns `REMOVED_LAST` when the block is gone, the remaining
   * owner's serial when one owner is left, `NOT_FOUND` when there was no such block, and 0 otherwise.
   */
  remove(lo: number, hi: number, serial: number): number {
    const entry = this.entries.get(0, lo, hi);
    if (entry === NONE) return NOT_FOUND;
    const left = this.count[entry]! - 1;
    this.count[entry] = left;
    this.ownerSum[entry] = this.ownerSum[entry]! - serial;
    if (left === 1) return this.ownerSum[entry]!;
    if (left > 0) return 0;
    this.entries.delete(0, lo, hi);
    this.ids.release(entry);
    return REMOVED_LAST;
  }
}
