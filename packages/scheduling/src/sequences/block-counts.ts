/**
 * Reference-counted set of block identities for one worker rank, stored column-wise in typed arrays
 * (no object per block). An identity is a small-integer map key (low 30 bits of the hash) plus a check
 * value (the other 34 bits); blocks sharing a key are chained. Each block also keeps the sum of its
 * owners' serial numbers, so that when one owner is left, that sum is its serial.
 */

const NONE = -1;

/** `add` result: the block is new (its only owner is the caller). */
export const ADDED_NEW = -1;
/** `remove` result: the block had no reference left and is gone. */
const REMOVED_LAST = -1;
/** `remove` result: the caller held no reference to that block. */
const NOT_FOUND = -2;

export class BlockCounts {
  private readonly heads = new Map<number, number>();
  private check = new Float64Array(16);
  private count = new Int32Array(16);
  private ownerSum = new Float64Array(16);
  private next = new Int32Array(16);
  private freeHead = NONE;
  private highWater = 0;
  /** Number of distinct live blocks. */
  size = 0;

  private find(key: number, check: number): number {
    let slot = this.heads.get(key) ?? NONE;
    while (slot !== NONE && this.check[slot] !== check) slot = this.next[slot]!;
    return slot;
  }

  has(key: number, check: number): boolean {
    return this.find(key, check) !== NONE;
  }

  /**
   * Adds a reference by owner `serial`. Returns `ADDED_NEW` for a new block, the previous sole owner's
   * serial when the block goes from one owner to two, and 0 otherwise.
   */
  add(key: number, check: number, serial: number): number {
    const slot = this.find(key, check);
    if (slot !== NONE) {
      const was = this.count[slot]!;
      this.count[slot] = was + 1;
      const previous = this.ownerSum[slot]!;
      this.ownerSum[slot] = previous + serial;
      return was === 1 ? previous : 0;
    }
    const fresh = this.allocate();
    this.check[fresh] = check;
    this.count[fresh] = 1;
    this.ownerSum[fresh] = serial;
    this.next[fresh] = this.heads.get(key) ?? NONE;
    this.heads.set(key, fresh);
    this.size++;
    return ADDED_NEW;
  }

  /**
   * Drops owner `serial`'s reference. Returns `REMOVED_LAST` when the block is gone, the remaining
   * owner's serial when one owner is left, `NOT_FOUND` when there was no such block, and 0 otherwise.
   */
  remove(key: number, check: number, serial: number): number {
    const slot = this.find(key, check);
    if (slot === NONE) return NOT_FOUND;
    const left = this.count[slot]! - 1;
    this.count[slot] = left;
    this.ownerSum[slot] = this.ownerSum[slot]! - serial;
    if (left === 1) return this.ownerSum[slot]!;
    if (left > 0) return 0;
    this.unlink(key, slot);
    this.size--;
    return REMOVED_LAST;
  }

  private unlink(key: number, slot: number): void {
    const head = this.heads.get(key)!;
    if (head === slot) {
      if (this.next[slot] === NONE) this.heads.delete(key);
      else this.heads.set(key, this.next[slot]!);
    } else {
      let prev = head;
      while (this.next[prev] !== slot) prev = this.next[prev]!;
      this.next[prev] = this.next[slot]!;
    }
    this.next[slot] = this.freeHead;
    this.freeHead = slot;
  }

  private allocate(): number {
    if (this.freeHead !== NONE) {
      const slot = this.freeHead;
      this.freeHead = this.next[slot]!;
      return slot;
    }
    if (this.highWater === this.check.length) this.grow();
    return this.highWater++;
  }

  private grow(): void {
    const size = this.check.length * 2;
    const grown = <T extends Float64Array | Int32Array>(from: T, to: T): T => {
      to.set(from);
      return to;
    };
    this.check = grown(this.check, new Float64Array(size));
    this.count = grown(this.count, new Int32Array(size));
    this.ownerSum = grown(this.ownerSum, new Float64Array(size));
    this.next = grown(this.next, new Int32Array(size));
  }
}
