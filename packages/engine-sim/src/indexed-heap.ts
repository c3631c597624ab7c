const ABSENT = -1;

/**
 * A binary min-heap of integer ids (`0 ≤ id`) ordered by a numeric key, with the position of every id
 * kept so that an id's key can change, or the id leave, in O(log n). Storage grows as ids grow.
 */
export class IndexedHeap {
  private heap: Int32Array;
  private position: Int32Array;
  private keys: Float64Array;
  size = 0;

  constructor(capacity = 16) {
    this.heap = new Int32Array(capacity);
    this.position = new Int32Array(capacity).fill(ABSENT);
    this.keys = new Float64Array(capacity);
  }

  has(id: number): boolean {
    return id < this.position.length && this.position[id] !== ABSENT;
  }

  /** The id with the smallest key (-1 when empty). */
  peek(): number {
    return this.size === 0 ? ABSENT : this.heap[0]!;
  }

  keyOf(id: number): number {
    return this.keys[id]!;
  }

  /** Adds `id` with `key`, or moves it to `key` when present. */
  set(id: number, key: number): void {
    if (id >= this.position.length) this.grow(id + 1);
    const at = this.position[id]!;
    this.keys[id] = key;
    if (at === ABSENT) {
      const last = this.size++;
      this.heap[last] = id;
      this.position[id] = last;
      this.up(last);
    } else {
      this.down(this.up(at));
    }
  }

  /** Removes `id` (no-op when absent). */
  delete(id: number): void {
    if (!this.has(id)) return;
    const at = this.position[id]!;
    this.position[id] = ABSENT;
    const last = this.heap[--this.size]!;
    if (at === this.size) return;
    this.heap[at] = last;
    this.position[last] = at;
    this.down(this.up(at));
  }

  /** Removes and returns the id with the smallest key (-1 when empty). */
  pop(): number {
    const id = this.peek();
    if (id !== ABSENT) this.delete(id);
    return id;
  }

  private grow(min: number): void {
    const capacity = Math.max(min, this.position.length * 2);
    const heap = new Int32Array(capacity);
    heap.set(this.heap);
    const position = new Int32Array(capacity).fill(ABSENT);
    position.set(this.position);
    const keys = new Float64Array(capacity);
    keys.set(this.keys);
    this.heap = heap;
    this.position = position;
    this.keys = keys;
  }

  private less(a: number, b: number): boolean {
    return this.keys[this.heap[a]!]! < this.keys[this.heap[b]!]!;
  }

  private swap(a: number, b: number): void {
    const ia = this.heap[a]!;
    const ib = this.heap[b]!;
    this.heap[a] = ib;
    this.heap[b] = ia;
    this.position[ib] = a;
    this.position[ia] = b;
  }

  private up(at: number): number {
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (!this.less(at, parent)) break;
      this.swap(at, parent);
      at = parent;
    }
    return at;
  }

  private down(at: number): void {
    for (;;) {
      const left = 2 * at + 1;
      if (left >= this.size) return;
      const right = left + 1;
      const child = right < this.size && this.less(right, left) ? right : left;
      if (!this.less(child, at)) return;
      this.swap(child, at);
      at = child;
    }
  }
}
