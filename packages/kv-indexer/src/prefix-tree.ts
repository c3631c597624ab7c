import { U64Table } from "@dynamo/primitives";

/**
 * The prefix tree behind `RadixIndex` and `ApproxIndex`, on plain integers only.
 *
 * - Worker ranks are dense slot ids (see `WorkerSlots`); 64-bit hashes are pairs of int32 halves
 *   `(lo, hi)`, read from an `Int32Array` holding them in pairs (`lo = a[2i]`, `hi = a[2i + 1]`, see
 *   `HalvesScratch`).
 * - Nodes live in one `Int32Array`, `stride` words each (32 bytes with up to 32 slots), reused through a
 *   free list: parent, local (tokens) hash, first child, next and previous sibling, holder count and the
 *   set of slots holding the node as a bitset of `words` int32 words. Engine hashes live only in the
 *   per-slot tables (workers may disagree on them).
 * - A node with a single child finds it through `firstChild` (most of a prompt's chain); the children
 *   of nodes with two or more children are also in one global `(parent, local hash) → child` table.
 * - One table per slot maps the slot's engine hashes to nodes.
 *
 * Invariant: slot `s` is in a node's worker set exactly when `s`'s table has at least one entry for it
 * (several engine hashes of one slot may name the same node: the extra ones are counted as aliases).
 * A node whose worker set becomes empty is freed; its children are detached (unreachable from the root,
 * but still owned by whichever slots hold them, until those slots remove them).
 */

export const ROOT = 0;
const NONE = -1;

export const enum StoreStatus {
  Stored = 0,
  ParentNotFound = 1,
  InvalidSequence = 2,
}

/** One (worker, block) entry in breadth-first order, as reported by `PrefixTree.dump`. */
export interface DumpVisitor {
  (
    slot: number,
    parent: number,
    node: number,
    engineLo: number,
    engineHi: number,
    parentLo: number,
    parentHi: number,
  ): void;
}

// Field offsets inside a node record.
const PARENT = 0;
const LOCAL_LO = 1;
const LOCAL_HI = 2;
const FIRST_CHILD = 3;
const NEXT_SIBLING = 4;
const PREV_SIBLING = 5;
const HOLDERS = 6;
const BITS = 7;

export class PrefixTree {
  private capacity = 0;
  private highWater = 1; // node 0 is the root
  private freeHead = NONE;
  private words = 1;
  private stride = BITS + 1;
  private nodes = new Int32Array(0);

  private readonly children = new U64Table(1024);
  private readonly lookups: (U64Table | undefined)[] = [];
  private readonly aliases: (Map<number, number> | undefined)[] = [];
  private entries = 0;

  /** Blocks applied by the last `storeRun` call. */
  lastStoreApplied = 0;

  /** Results of the last `findMatches`: `matchSlots[i]` matched `matchDepths[i]` blocks. */
  matchSlots = new Int32Array(32);
  matchDepths = new Int32Array(32);
  private active = new Int32Array(1);

  constructor(initialNodes = 1024) {
    this.resize(Math.max(16, initialNodes), this.stride);
    this.nodes[PARENT] = NONE;
    this.nodes[FIRST_CHILD] = NONE;
  }

  /** Total (slot, engine hash) entries. */
  get size(): number {
    return this.entries;
  }

  /** Entries held by one slot (its lookup-table size). */
  slotSize(slot: number): number {
    return this.lookups[slot]?.size ?? 0;
  }

  hasSlot(slot: number): boolean {
    return this.lookups[slot] !== undefined;
  }

  /** Makes `slot` known (with an empty table) so that it can hold blocks. */
  openSlot(slot: number): U64Table {
    let table = this.lookups[slot];
    if (table) return table;
    if (slot >= this.words * 32) this.widenWorkerBits(Math.ceil((slot + 1) / 32));
    this.lookups[slot] = table = new U64Table();
    if (this.matchSlots.length <= slot) {
      this.matchSlots = new Int32Array((slot + 1) * 2);
      this.matchDepths = new Int32Array((slot + 1) * 2);
    }
    return table;
  }

  /**
   * Stores `count` blocks for `slot` continuing the block with engine hash `(parentLo, parentHi)`
   * (`hasParent = false`: from the root). `engine` and `local` hold int32 halves; block `k` is read at
   * `2 * (offset + k)`. Stops at the first block that would become its own ancestor.
   */
  storeRun(
    slot: number,
    hasParent: boolean,
    parentLo: number,
    parentHi: number,
    engine: Int32Array,
    local: Int32Array,
    offset: number,
    count: number,
  ): StoreStatus {
    const lookup = this.openSlot(slot);
    this.lastStoreApplied = 0;
    let current = ROOT;
    if (hasParent) {
      current = lookup.get(0, parentLo, parentHi);
      if (current === NONE) return StoreStatus.ParentNotFound;
    }
    for (let k = 0; k < count; k++) {
      const at = (offset + k) * 2;
      const eLo = engine[at]!;
      const eHi = engine[at + 1]!;
      const lLo = local[at]!;
      const lHi = local[at + 1]!;
      const previous = lookup.get(0, eLo, eHi);
      let child = this.childOf(current, lLo, lHi);
      if (child !== NONE && previous === child) {
        current = child;
        this.lastStoreApplied++;
        continue;
      }
      if (previous !== NONE && this.isAncestorOrSelf(previous, current)) return StoreStatus.InvalidSequence;
      if (child === NONE) child = this.createNode(current, lLo, lHi);
      // The slot re-stores a block it held elsewhere: the new position replaces the old one.
      if (previous !== NONE) this.release(slot, previous);
      else this.entries++;
      this.addHolder(slot, child);
      lookup.set(0, eLo, eHi, child);
      current = child;
      this.lastStoreApplied++;
    }
    return StoreStatus.Stored;
  }

  /** Removes one engine hash of `slot`; false when the slot does not hold it. */
  remove(slot: number, lo: number, hi: number): boolean {
    const lookup = this.lookups[slot];
    if (!lookup) return false;
    const node = lookup.delete(0, lo, hi);
    if (node === NONE) return false;
    this.entries--;
    this.release(slot, node);
    return true;
  }

  /** Removes every block of `slot`, keeping the slot known. */
  clearSlot(slot: number): void {
    const lookup = this.lookups[slot];
    if (!lookup || lookup.size === 0) return;
    for (let i = 0; i < lookup.capacity; i++) {
      const node = lookup.valueAt(i);
      if (node !== NONE) this.release(slot, node);
    }
    this.entries -= lookup.size;
    this.lookups[slot] = new U64Table();
    this.aliases[slot] = undefined;
  }

  /** Removes every block of `slot` and forgets the slot. */
  closeSlot(slot: number): void {
    this.clearSlot(slot);
    this.lookups[slot] = undefined;
  }

  /**
   * Overlap of a query (`count` local hashes as int32 halves) with every slot: fills
   * `matchSlots` / `matchDepths` and returns how many slots matched at least one block. A slot's depth
   * is the number of leading query blocks it holds along one path from the root.
   */
  findMatches(query: Int32Array, count: number): number {
    if (count === 0) return 0;
    const nodes = this.nodes;
    const words = this.words;
    const stride = this.stride;
    const active = this.active;
    let node = this.childOf(ROOT, query[0]!, query[1]!);
    if (node === NONE) return 0;
    let any = 0;
    for (let w = 0, base = node * stride + BITS; w < words; w++) any |= active[w] = nodes[base + w]!;
    if (any === 0) return 0;
    let matched = 0;
    let depth = 1;
    for (; depth < count; depth++) {
      const next = this.childOf(node, query[2 * depth]!, query[2 * depth + 1]!);
      if (next === NONE) break;
      let remaining = 0;
      for (let w = 0, base = next * stride + BITS; w < words; w++) {
        const before = active[w]!;
        const after = before & nodes[base + w]!;
        if (after !== before) matched = this.emitMatches(before & ~after, w, depth, matched);
        active[w] = after;
        remaining |= after;
      }
      if (remaining === 0) return matched;
      node = next;
    }
    for (let w = 0; w < words; w++) matched = this.emitMatches(active[w]!, w, depth, matched);
    return matched;
  }

  /**
   * Visits every (slot, node) pair reachable for that slot from the root (every ancestor also held
   * by the slot), breadth-first, once per engine hash the slot uses for the node. Blocks a slot holds
   * below a prefix it no longer holds can never match and are not visited.
   */
  dump(visit: DumpVisitor): void {
    const engineOf: Map<number, number[]>[] = [];
    this.lookups.forEach((lookup, slot) => {
      if (!lookup) return;
      const byNode = new Map<number, number[]>();
      for (let i = 0; i < lookup.capacity; i++) {
        const node = lookup.valueAt(i);
        if (node === NONE) continue;
        const list = byNode.get(node);
        if (list) list.push(lookup.loAt(i), lookup.hiAt(i));
        else byNode.set(node, [lookup.loAt(i), lookup.hiAt(i)]);
      }
      engineOf[slot] = byNode;
    });
    const visited: Set<number>[] = engineOf.map(() => new Set<number>());
    const nodes = this.nodes;
    const stride = this.stride;
    const queue: number[] = [];
    for (let c = nodes[FIRST_CHILD]!; c !== NONE; c = nodes[c * stride + NEXT_SIBLING]!) queue.push(c);
    for (let head = 0; head < queue.length; head++) {
      const node = queue[head]!;
      const base = node * stride;
      const parent = nodes[base + PARENT]!;
      for (let w = 0; w < this.words; w++) {
        for (let pending = nodes[base + BITS + w]!; pending !== 0; pending &= pending - 1) {
          const slot = w * 32 + 31 - Math.clz32(pending & -pending);
          const parentEngines = parent === ROOT ? undefined : engineOf[slot]!.get(parent);
          if (parent !== ROOT && !(parentEngines && visited[slot]!.has(parent))) continue;
          visited[slot]!.add(node);
          const engines = engineOf[slot]!.get(node)!;
          for (let e = 0; e < engines.length; e += 2) {
            visit(slot, parent, node, engines[e]!, engines[e + 1]!, parentEngines?.[0] ?? 0, parentEngines?.[1] ?? 0);
          }
        }
      }
      for (let c = nodes[base + FIRST_CHILD]!; c !== NONE; c = nodes[c * stride + NEXT_SIBLING]!) queue.push(c);
    }
  }

  /** The node `slot` holds under engine hash `(lo, hi)`, or -1. */
  nodeOf(slot: number, lo: number, hi: number): number {
    return this.lookups[slot]?.get(0, lo, hi) ?? NONE;
  }

  /**
   * Local hash halves of every node from the root down to `node` (`[lo0, hi0, lo1, hi1, …]`), or
   * undefined when the node is detached (some ancestor was freed, so it has no position any more).
   */
  pathTo(node: number): number[] | undefined {
    const path: number[] = [];
    let n = node;
    for (; n !== ROOT && n !== NONE; n = this.nodes[n * this.stride + PARENT]!) {
      const base = n * this.stride;
      path.push(this.nodes[base + LOCAL_HI]!, this.nodes[base + LOCAL_LO]!);
    }
    return n === ROOT ? path.reverse() : undefined;
  }

  /** Local hash halves of a node (for dumps). */
  localHashOf(node: number): [lo: number, hi: number] {
    const base = node * this.stride;
    return [this.nodes[base + LOCAL_LO]!, this.nodes[base + LOCAL_HI]!];
  }

  /** The child of `node` with local hash `(lo, hi)`, or -1. */
  private childOf(node: number, lo: number, hi: number): number {
    const nodes = this.nodes;
    const stride = this.stride;
    const first = nodes[node * stride + FIRST_CHILD]!;
    if (first === NONE) return NONE;
    const base = first * stride;
    if (nodes[base + NEXT_SIBLING] !== NONE) return this.children.get(node, lo, hi);
    return nodes[base + LOCAL_LO] === lo && nodes[base + LOCAL_HI] === hi ? first : NONE;
  }

  private emitMatches(slots: number, word: number, depth: number, matched: number): number {
    for (let pending = slots; pending !== 0; pending &= pending - 1) {
      this.matchSlots[matched] = word * 32 + 31 - Math.clz32(pending & -pending);
      this.matchDepths[matched] = depth;
      matched++;
    }
    return matched;
  }

  private isAncestorOrSelf(candidate: number, node: number): boolean {
    for (let n = node; n !== NONE; n = this.nodes[n * this.stride + PARENT]!) if (n === candidate) return true;
    return false;
  }

  private addHolder(slot: number, node: number): void {
    const at = node * this.stride + BITS + (slot >>> 5);
    const bit = 1 << (slot & 31);
    const bits = this.nodes[at]!;
    if ((bits & bit) !== 0) {
      let aliases = this.aliases[slot];
      if (!aliases) this.aliases[slot] = aliases = new Map();
      aliases.set(node, (aliases.get(node) ?? 0) + 1);
      return;
    }
    this.nodes[at] = bits | bit;
    this.nodes[node * this.stride + HOLDERS]!++;
  }

  /** Drops one reference of `slot` to `node`; frees the node when no slot holds it any more. */
  private release(slot: number, node: number): void {
    const aliases = this.aliases[slot];
    if (aliases !== undefined) {
      const extra = aliases.get(node);
      if (extra !== undefined) {
        if (extra > 1) aliases.set(node, extra - 1);
        else aliases.delete(node);
        return;
      }
    }
    const base = node * this.stride;
    this.nodes[base + BITS + (slot >>> 5)]! &= ~(1 << (slot & 31));
    if (--this.nodes[base + HOLDERS]! === 0) this.freeNode(node);
  }

  private createNode(parent: number, lo: number, hi: number): number {
    let node = this.freeHead;
    if (node !== NONE) this.freeHead = this.nodes[node * this.stride + NEXT_SIBLING]!;
    else {
      if (this.highWater === this.capacity) this.resize(this.capacity * 2, this.stride);
      node = this.highWater++;
    }
    const nodes = this.nodes;
    const stride = this.stride;
    const base = node * stride;
    const first = nodes[parent * stride + FIRST_CHILD]!;
    nodes[base + PARENT] = parent;
    nodes[base + LOCAL_LO] = lo;
    nodes[base + LOCAL_HI] = hi;
    nodes[base + FIRST_CHILD] = NONE;
    nodes[base + NEXT_SIBLING] = first;
    nodes[base + PREV_SIBLING] = NONE;
    nodes[base + HOLDERS] = 0;
    nodes[parent * stride + FIRST_CHILD] = node;
    if (first !== NONE) {
      nodes[first * stride + PREV_SIBLING] = node;
      // The parent now has several children: they must all be in the table.
      if (nodes[first * stride + NEXT_SIBLING] === NONE) this.indexChild(parent, first);
      this.indexChild(parent, node);
    }
    return node;
  }

  private freeNode(node: number): void {
    const nodes = this.nodes;
    const stride = this.stride;
    this.detach(node);
    for (let c = nodes[node * stride + FIRST_CHILD]!; c !== NONE;) {
      const next = nodes[c * stride + NEXT_SIBLING]!;
      this.detach(c);
      c = next;
    }
    nodes[node * stride + NEXT_SIBLING] = this.freeHead;
    this.freeHead = node;
  }

  /** Unhooks a node from its parent (it keeps its own children). */
  private detach(node: number): void {
    const nodes = this.nodes;
    const stride = this.stride;
    const base = node * stride;
    const parent = nodes[base + PARENT]!;
    if (parent === NONE) return;
    const parentBase = parent * stride;
    const first = nodes[parentBase + FIRST_CHILD]!;
    const several = nodes[first * stride + NEXT_SIBLING] !== NONE;
    if (several) this.unindexChild(parent, node);
    const prev = nodes[base + PREV_SIBLING]!;
    const next = nodes[base + NEXT_SIBLING]!;
    if (prev !== NONE) nodes[prev * stride + NEXT_SIBLING] = next;
    else nodes[parentBase + FIRST_CHILD] = next;
    if (next !== NONE) nodes[next * stride + PREV_SIBLING] = prev;
    nodes[base + PARENT] = NONE;
    nodes[base + PREV_SIBLING] = NONE;
    nodes[base + NEXT_SIBLING] = NONE;
    // Down to a single child: it is found through `firstChild` again.
    const remaining = nodes[parentBase + FIRST_CHILD]!;
    if (several && remaining !== NONE && nodes[remaining * stride + NEXT_SIBLING] === NONE)
      this.unindexChild(parent, remaining);
  }

  private indexChild(parent: number, child: number): void {
    const base = child * this.stride;
    this.children.set(parent, this.nodes[base + LOCAL_LO]!, this.nodes[base + LOCAL_HI]!, child);
  }

  private unindexChild(parent: number, child: number): void {
    const base = child * this.stride;
    this.children.delete(parent, this.nodes[base + LOCAL_LO]!, this.nodes[base + LOCAL_HI]!);
  }

  private resize(capacity: number, stride: number): void {
    const nodes = new Int32Array(capacity * stride);
    if (stride === this.stride) nodes.set(this.nodes);
    else {
      for (let n = 0; n < this.highWater; n++)
        nodes.set(this.nodes.subarray(n * this.stride, (n + 1) * this.stride), n * stride);
    }
    this.nodes = nodes;
    this.capacity = capacity;
    this.stride = stride;
  }

  private widenWorkerBits(words: number): void {
    this.resize(this.capacity, BITS + words);
    this.words = words;
    this.active = new Int32Array(words);
  }
}
