/**
 * Binary min-heap of expiry timers ordered by (expiry ascending, position descending), so that among
 * blocks expiring together the deepest go first. Stored in parallel typed arrays, no allocation per
 * push/pop. Items carry an entry id and that entry's generation; the owner decides which items are
 * stale (lazy deletion) and rebuilds the heap when they dominate.
 */
export class ExpiryHeap {
  private expiry = new Float64Array(64);
  private position = new Int32Array(64);
  private entry = new Int32Array(64);
  private generation = new Int32Array(64);
  private count = 0;

  get size(): number {
    return this.count;
  }

  get topExpiry(): number {
    return this.count > 0 ? this.expiry[0]! : Infinity;
  }

  push(expiry: number, position: number, entry: number, generation: number): void {
    if (this.count === this.expiry.length) this.grow();
    let i = this.count++;
    while (i > 0) {
      const up = (i - 1) >> 1;
      if (!this.before(expiry, position, up)) break;
      this.move(up, i);
      i = up;
    }
    this.put(i, expiry, position, entry, generation);
  }

  /** Removes the top item; read it first with `peekEntry` / `peekGeneration`. */
  pop(): void {
    const last = --this.count;
    if (last === 0) return;
    this.siftDown(0, this.expiry[last]!, this.position[last]!, this.entry[last]!, this.generation[last]!);
  }

  peekEntry(): number {
    return this.entry[0]!;
  }

  peekGeneration(): number {
    return this.generation[0]!;
  }

  /** Replaces the content with the given items (heapified in O(n)). */
  rebuild(items: (visit: (expiry: number, position: number, entry: number, generation: number) => void) => void): void {
    this.count = 0;
    items((expiry, position, entry, generation) => {
      if (this.count === this.expiry.length) this.grow();
      this.put(this.count++, expiry, position, entry, generation);
    });
    for (let i = (this.count >> 1) - 1; i >= 0; i--) {
      this.siftDown(i, this.expiry[i]!, this.position[i]!, this.entry[i]!, this.generation[i]!);
    }
  }

  private siftDown(start: number, expiry: number, position: number, entry: number, generation: number): void {
    const n = this.count;
    let i = start;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && this.precedes(child + 1, child)) child++;
      if (!this.before(this.expiry[child]!, this.position[child]!, i, expiry, position)) break;
      this.move(child, i);
      i = child;
    }
    this.put(i, expiry, position, entry, generation);
  }

  /** Does (expiry, position) come before the item at `at` (or before the given pair)? */
  private before(
    expiry: number,
    position: number,
    at: number,
    otherExpiry = this.expiry[at]!,
    otherPosition = this.position[at]!,
  ): boolean {
    return expiry < otherExpiry || (expiry === otherExpiry && position > otherPosition);
  }

  private precedes(a: number, b: number): boolean {
    return this.before(this.expiry[a]!, this.position[a]!, b);
  }

  private move(from: number, to: number): void {
    this.put(to, this.expiry[from]!, this.position[from]!, this.entry[from]!, this.generation[from]!);
  }

  private put(i: number, expiry: number, position: number, entry: number, generation: number): void {
    this.expiry[i] = expiry;
    this.position[i] = position;
    this.entry[i] = entry;
    this.generation[i] = generation;
  }

  private grow(): void {
    const n = this.expiry.length * 2;
    const expiry = new Float64Array(n);
    const position = new Int32Array(n);
    const entry = new Int32Array(n);
    const generation = new Int32Array(n);
    expiry.set(this.expiry);
    position.set(this.position);
    entry.set(this.entry);
    generation.set(this.generation);
    this.expiry = expiry;
    this.position = position;
    this.entry = entry;
    this.generation = generation;
  }
}
