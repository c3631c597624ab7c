import { IndexedHeap } from "./indexed-heap.js";
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

/** Candidates in ascending tick order: the pool adds only leaf blocks. */
class TickHeap implements Evictor {
  private readonly heap: IndexedHeap;

  constructor(capacity: number) {
    this.heap = new IndexedHeap(capacity);
  }

  get size(): number {
    return this.heap.size;
  }

  add(slot: number, tick: number): void {
    this.heap.set(slot, tick);
  }

  remove(slot: number): void {
    this.heap.delete(slot);
  }

  pop(): number {
    return this.heap.pop();
  }
}
