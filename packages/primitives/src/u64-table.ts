/**
 * The one hash table of the routing packages: a 64-bit key, given as its two int32 halves (`lo`, `hi`),
 * plus a small integer `tag` (a parent node id, a rank slot, or 0) → a non-negative int32 value. Values
 * are usually indexes into the caller's own typed arrays (entry ids), so callers keep any payload beside
 * it without a second table.
 *
 * Stored flat in one `Int32Array` (4 words per slot, one cache line holds 4 slots). Linear probing with
 * backward-shift deletion (no tombstones), load factor at most 3/4. No allocation per operation; grows
 * by doubling.
 */

const EMPTY = -1;
const MIN_CAPACITY = 16;

export class U64Table {
  /** Slot `i` is `[tag, lo, hi, value]` at `4 * i`; `value === -1` marks an empty slot. */
  private slots: Int32Array;
  private mask: number;
  private count = 0;

  constructor(initialCapacity = MIN_CAPACITY) {
    let capacity = MIN_CAPACITY;
    while (capacity * 3 < initialCapacity * 4) capacity *= 2;
    this.slots = new Int32Array(capacity * 4).fill(EMPTY);
    this.mask = capacity - 1;
  }

  get size(): number {
    return this.count;
  }

  /** Number of slots; iterate with `valueAt(i)` / `tagAt(i)` / `loAt(i)` / `hiAt(i)` for `i < capacity`. */
  get capacity(): number {
    return this.mask + 1;
  }

  /** The value stored under the key, or -1. */
  get(tag: number, lo: number, hi: number): number {
    return this.slots[(this.locate(tag, lo, hi) << 2) + 3]!;
  }

  /** Inserts or overwrites; returns the previous value or -1. `value` must be >= 0. */
  set(tag: number, lo: number, hi: number, value: number): number {
    if ((this.count + 1) * 4 > this.capacity * 3) this.grow();
    const at = this.locate(tag, lo, hi) << 2;
    const slots = this.slots;
    const old = slots[at + 3]!;
    if (old === EMPTY) {
      slots[at] = tag;
      slots[at + 1] = lo;
      slots[at + 2] = hi;
      this.count++;
    }
    slots[at + 3] = value;
    return old;
  }

  /** Removes the key; returns its value or -1 when absent. */
  delete(tag: number, lo: number, hi: number): number {
    const i = this.locate(tag, lo, hi);
    const value = this.slots[(i << 2) + 3]!;
    if (value !== EMPTY) this.removeSlot(i);
    return value;
  }

  /** Removes every key (and gives back the memory of a grown table). */
  clear(): void {
    this.slots = new Int32Array(MIN_CAPACITY * 4).fill(EMPTY);
    this.mask = MIN_CAPACITY - 1;
    this.count = 0;
  }

  valueAt(i: number): number {
    return this.slots[(i << 2) + 3]!;
  }

  tagAt(i: number): number {
    return this.slots[i << 2]!;
  }

  loAt(i: number): number {
    return this.slots[(i << 2) + 1]!;
  }

  hiAt(i: number): number {
    return this.slots[(i << 2) + 2]!;
  }

  /** The slot holding the key, or the empty slot ending its probe run. */
  private locate(tag: number, lo: number, hi: number): number {
    const slots = this.slots;
    const mask = this.mask;
    let i = slotOf(tag, lo, hi, mask);
    for (;;) {
      const at = i << 2;
      if (slots[at + 3] === EMPTY || (slots[at + 1] === lo && slots[at + 2] === hi && slots[at] === tag)) return i;
      i = (i + 1) & mask;
    }
  }

  /** Backward-shift deletion: pull later members of the probe run into the hole so lookups stay exact. */
  private removeSlot(hole: number): void {
    const slots = this.slots;
    const mask = this.mask;
    let j = hole;
    for (;;) {
      j = (j + 1) & mask;
      const at = j << 2;
      if (slots[at + 3] === EMPTY) break;
      const home = slotOf(slots[at]!, slots[at + 1]!, slots[at + 2]!, mask);
      // Move j into the hole unless its home lies cyclically in (hole, j].
      const stays = hole <= j ? hole < home && home <= j : hole < home || home <= j;
      if (stays) continue;
      const to = hole << 2;
      slots[to] = slots[at]!;
      slots[to + 1] = slots[at + 1]!;
      slots[to + 2] = slots[at + 2]!;
      slots[to + 3] = slots[at + 3]!;
      hole = j;
    }
    slots[(hole << 2) + 3] = EMPTY;
    this.count--;
  }

  private grow(): void {
    const old = this.slots;
    const capacity = this.capacity * 2;
    this.slots = new Int32Array(capacity * 4).fill(EMPTY);
    this.mask = capacity - 1;
    this.count = 0;
    for (let at = 0; at < old.length; at += 4) {
      const value = old[at + 3]!;
      if (value !== EMPTY) this.set(old[at]!, old[at + 1]!, old[at + 2]!, value);
    }
  }
}

function slotOf(tag: number, lo: number, hi: number, mask: number): number {
  let h = Math.imul(lo ^ Math.imul(hi, 0x85ebca6b) ^ Math.imul(tag, 0x9e3779b1), 0x27d4eb2f);
  h ^= h >>> 15;
  return h & mask;
}
