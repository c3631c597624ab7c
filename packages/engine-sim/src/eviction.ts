import type { EvictionPolicy } from "./types.js";

/** The cached blocks nobody uses that may be evicted next, in eviction order. Blocks are pool slots. */
export interface Evictor {
  /** `slot` may be evicted; `tick` orders it (smaller goes first). */
  add(slot: number, tick: number): void;
  /** `slot` is no longer a candidate (in use again, or evicted). No-op when absent. */
  remove(slot: number): void;
  /** The next victim, removed from the candidates; -1 when there is none. */
  pop(): number;
  readonly size: number;
}

/** The evictor of a policy for a pool of `capacity` slots. */
export function createEvictor(policy: EvictionPolicy, capacity: number): Evictor {
  return policy === "lru" ? new LruList(capacity) : new TickHeap(capacity);
}

const NONE = -1;

/** Candidates in the order they were added (LRU: `add` happens when a block's last user lets go). */
class LruList implements Evictor {
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private readonly member: Uint8Array;
  private head = NONE;
  private tail = NONE;
  size = 0;

  constructor(capacity: number) {
    this.prev = new Int32Array(capacity).fill(NONE);
    this.next = new Int32Array(capacity).fill(NONE);
    this.member = new Uint8Array(capacity);
  }

  add(slot: number): void {
    if (this.member[slot]) this.remove(slot);
    this.member[slot] = 1;
    this.prev[slot] = this.tail;
    this.next[slot] = NONE;
    if (this.tail === NONE) this.head = slot;
    else this.next[this.tail] = slot;
    this.tail = slot;
    this.size++;
  }

  remove(slot: number): void {
    if (!this.member[slot]) return;
    const p = this.prev[slot]!;
    const n = this.next[slot]!;
    if (p === NONE) this.head = n;
    else this.next[p] = n;
    if (n === NONE) this.tail = p;
    else this.prev[n] = p;
    this.member[slot] = 0;
    this.size--;
  }

  pop(): number {
    const slot = this.head;
    if (slot !== NONE) this.remove(slot);
    return slot;
  }
}

/** Candidates in ascending tick order (an indexed binary min-heap): the pool adds only leaf blocks. */
class TickHeap implements Evictor {
  private readonly heap: Int32Array;
  private readonly position: Int32Array;
  private readonly tick: Float64Array;
  size = 0;

  constructor(capacity: number) {
    this.heap = new Int32Array(capacity);
    this.position = new Int32Array(capacity).fill(NONE);
    this.tick = new Float64Array(capacity);
  }

  add(slot: number, tick: number): void {
    if (this.position[slot] !== NONE) this.remove(slot);
    this.tick[slot] = tick;
    const at = this.size++;
    this.heap[at] = slot;
    this.position[slot] = at;
    this.up(at);
  }

  remove(slot: number): void {
    const at = this.position[slot]!;
    if (at === NONE) return;
    this.position[slot] = NONE;
    const last = this.heap[--this.size]!;
    if (at === this.size) return;
    this.heap[at] = last;
    this.position[last] = at;
    this.down(this.up(at));
  }

  pop(): number {
    if (this.size === 0) return NONE;
    const slot = this.heap[0]!;
    this.remove(slot);
    return slot;
  }

  private less(a: number, b: number): boolean {
    return this.tick[this.heap[a]!]! < this.tick[this.heap[b]!]!;
  }

  private swap(a: number, b: number): void {
    const sa = this.heap[a]!;
    const sb = this.heap[b]!;
    this.heap[a] = sb;
    this.heap[b] = sa;
    this.position[sb] = a;
    this.position[sa] = b;
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
