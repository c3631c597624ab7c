const EMPTY = -1;

/**
 * Finds the pool slot holding a 64-bit block hash. The hashes live in the pool's own per-slot array,
 * seen here as int32 words (`words[2·slot]`, `words[2·slot + 1]`); the index is an open-addressing table of slot numbers (linear probing, at most
 * half full, backward-shift removal), so a lookup touches a few contiguous words and allocates nothing.
 */
export class SlotIndex {
  private readonly table: Int32Array;
  private readonly mask: number;
  private readonly shift: number;

  constructor(
    capacity: number,
    private readonly words: Int32Array,
  ) {
    let bits = 4;
    while (1 << bits < capacity * 2) bits++;
    this.table = new Int32Array(1 << bits).fill(EMPTY);
    this.mask = (1 << bits) - 1;
    this.shift = 32 - bits;
  }

  /** The slot whose hash has the words `(w0, w1)`, or -1. */
  find(w0: number, w1: number): number {
    const table = this.table;
    const words = this.words;
    for (let at = this.bucket(w0, w1); ; at = (at + 1) & this.mask) {
      const slot = table[at]!;
      if (slot === EMPTY || (words[2 * slot] === w0 && words[2 * slot + 1] === w1)) return slot;
    }
  }

  /** Indexes `slot` under the hash it holds (absent from the index). */
  insert(slot: number): void {
    const table = this.table;
    let at = this.home(slot);
    while (table[at] !== EMPTY) at = (at + 1) & this.mask;
    table[at] = slot;
  }

  /** Removes `slot` (present in the index); later entries of its probe run move back. */
  remove(slot: number): void {
    const table = this.table;
    const mask = this.mask;
    let hole = this.home(slot);
    while (table[hole] !== slot) hole = (hole + 1) & mask;
    for (let at = (hole + 1) & mask; ; at = (at + 1) & mask) {
      const moving = table[at]!;
      if (moving === EMPTY) break;
      const home = this.home(moving);
      // `moving` may fill the hole unless its home lies cyclically in (hole, at].
      const homeAfterHole = hole <= at ? home > hole && home <= at : home > hole || home <= at;
      if (homeAfterHole) continue;
      table[hole] = moving;
      hole = at;
    }
    table[hole] = EMPTY;
  }

  /** Empties the index. */
  clear(): void {
    this.table.fill(EMPTY);
  }

  private home(slot: number): number {
    return this.bucket(this.words[2 * slot]!, this.words[2 * slot + 1]!);
  }

  private bucket(w0: number, w1: number): number {
    return Math.imul(w0 ^ Math.imul(w1, 0x9e3779b1), 0x85ebca6b) >>> this.shift;
  }
}
