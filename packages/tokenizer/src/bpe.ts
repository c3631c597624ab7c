/**
 * Byte-pair encoding over byte-level symbols, equivalent to the Rust `tokenizers` BPE model without
 * dropout: repeatedly merge the adjacent pair with the lowest merge rank, leftmost first on ties.
 */

const EMPTY = -1;
const NO_RANK = 0x7fffffff;

/** Open-addressing hash table from a (left id, right id) pair to its merge rank and merged id. */
export class MergeTable {
  private readonly left: Int32Array;
  private readonly right: Int32Array;
  readonly rank: Int32Array;
  readonly merged: Int32Array;
  private readonly mask: number;

  constructor(expectedPairs: number) {
    let capacity = 1024;
    while (capacity < expectedPairs * 2) capacity *= 2;
    this.mask = capacity - 1;
    this.left = new Int32Array(capacity).fill(EMPTY);
    this.right = new Int32Array(capacity);
    this.rank = new Int32Array(capacity);
    this.merged = new Int32Array(capacity);
  }

  private static hash(left: number, right: number): number {
    return Math.imul(left ^ Math.imul(right, 0x85ebca6b), 0x9e3779b1) ^ (right >>> 7);
  }

  /** Adds a pair unless present (the first listed merge of a pair keeps its rank). */
  add(left: number, right: number, rank: number, merged: number): void {
    let slot = MergeTable.hash(left, right) & this.mask;
    while (this.left[slot] !== EMPTY) {
      if (this.left[slot] === left && this.right[slot] === right) return;
      slot = (slot + 1) & this.mask;
    }
    this.left[slot] = left;
    this.right[slot] = right;
    this.rank[slot] = rank;
    this.merged[slot] = merged;
  }

  /** The slot of the pair, or -1. */
  find(left: number, right: number): number {
    let slot = MergeTable.hash(left, right) & this.mask;
    for (;;) {
      const stored = this.left[slot]!;
      if (stored === EMPTY) return -1;
      if (stored === left && this.right[slot] === right) return slot;
      slot = (slot + 1) & this.mask;
    }
  }
}

/** Words up to this many symbols are merged by scanning; longer ones use a heap (O(n log n)). */
const SCAN_LIMIT = 48;

/** Applies merges in place to `symbols[0..length)`; returns the new length. */
export function mergeSymbols(table: MergeTable, symbols: Int32Array, length: number): number {
  return length <= SCAN_LIMIT ? mergeByScan(table, symbols, length) : mergeByHeap(table, symbols, length);
}

const scanRanks = new Int32Array(SCAN_LIMIT);
const scanMerged = new Int32Array(SCAN_LIMIT);

function pairAt(table: MergeTable, symbols: Int32Array, i: number): void {
  const slot = table.find(symbols[i]!, symbols[i + 1]!);
  if (slot < 0) {
    scanRanks[i] = NO_RANK;
  } else {
    scanRanks[i] = table.rank[slot]!;
    scanMerged[i] = table.merged[slot]!;
  }
}

function mergeByScan(table: MergeTable, symbols: Int32Array, length: number): number {
  let n = length;
  for (let i = 0; i + 1 < n; i++) pairAt(table, symbols, i);
  for (;;) {
    let best = NO_RANK;
    let at = -1;
    for (let i = 0; i + 1 < n; i++) {
      if (scanRanks[i]! < best) {
        best = scanRanks[i]!;
        at = i;
      }
    }
    if (at < 0) return n;
    symbols[at] = scanMerged[at]!;
    for (let i = at + 1; i + 1 < n; i++) {
      symbols[i] = symbols[i + 1]!;
      scanRanks[i] = scanRanks[i + 1]!;
      scanMerged[i] = scanMerged[i + 1]!;
    }
    n--;
    if (at > 0) pairAt(table, symbols, at - 1);
    if (at + 1 < n) pairAt(table, symbols, at);
  }
}

/** Min-heap of candidate merges keyed by rank × 2^31 + position (exact in a double). */
class MergeHeap {
  private items = new Float64Array(64);
  size = 0;

  push(rank: number, position: number): void {
    if (this.size === this.items.length) {
      const grown = new Float64Array(this.items.length * 2);
      grown.set(this.items);
      this.items = grown;
    }
    const key = rank * 0x80000000 + position;
    let i = this.size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.items[parent]! <= key) break;
      this.items[i] = this.items[parent]!;
      i = parent;
    }
    this.items[i] = key;
  }

  pop(): number {
    const top = this.items[0]!;
    const last = this.items[--this.size]!;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= this.size) break;
      if (child + 1 < this.size && this.items[child + 1]! < this.items[child]!) child++;
      if (this.items[child]! >= last) break;
      this.items[i] = this.items[child]!;
      i = child;
    }
    this.items[i] = last;
    return top;
  }
}

function mergeByHeap(table: MergeTable, symbols: Int32Array, length: number): number {
  const prev = new Int32Array(length);
  const next = new Int32Array(length);
  const alive = new Uint8Array(length).fill(1);
  const heap = new MergeHeap();
  const consider = (at: number): void => {
    const slot = table.find(symbols[at]!, symbols[next[at]!]!);
    if (slot >= 0) heap.push(table.rank[slot]!, at);
  };
  for (let i = 0; i < length; i++) {
    prev[i] = i - 1;
    next[i] = i + 1 < length ? i + 1 : -1;
  }
  for (let i = 0; i + 1 < length; i++) consider(i);
  while (heap.size > 0) {
    const key = heap.pop();
    const rank = Math.floor(key / 0x80000000);
    const at = key - rank * 0x80000000;
    const right = next[at]!;
    if (!alive[at] || right < 0) continue;
    const slot = table.find(symbols[at]!, symbols[right]!);
    if (slot < 0 || table.rank[slot] !== rank) continue; // stale: the pair changed since it was queued
    symbols[at] = table.merged[slot]!;
    alive[right] = 0;
    next[at] = next[right]!;
    if (next[at]! >= 0) prev[next[at]!] = at;
    if (prev[at]! >= 0) consider(prev[at]!);
    if (next[at]! >= 0) consider(at);
  }
  let n = 0;
  for (let i = 0; i >= 0; i = next[i]!) symbols[n++] = symbols[i]!;
  return n;
}
