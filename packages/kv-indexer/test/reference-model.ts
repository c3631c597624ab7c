import { workerRankKey, type RouterEvent, type WorkerRank } from "../src/index.js";

/**
 * A deliberately simple model of the prefix index (objects and Maps, no typed arrays), written from the
 * documented semantics. Property tests compare `RadixIndex` with it.
 */

interface ModelNode {
  parent: ModelNode | null;
  readonly local: bigint;
  readonly children: Map<bigint, ModelNode>;
  /** Worker-rank key → references (number of that rank's engine hashes naming this node). */
  readonly holders: Map<string, number>;
}

export class ReferenceModel {
  readonly root: ModelNode = { parent: null, local: 0n, children: new Map(), holders: new Map() };
  readonly lookups = new Map<string, Map<bigint, ModelNode>>();

  apply(event: RouterEvent): void {
    const key = workerRankKey(event.workerId, event.dpRank);
    const data = event.data;
    if (data.type === "cleared") return this.clear(key, true);
    let lookup = this.lookups.get(key);
    if (data.type === "removed") {
      // Removals never make a rank known.
      if (!lookup) return;
      for (const hash of data.blockHashes) {
        const node = lookup.get(hash);
        if (!node) continue;
        lookup.delete(hash);
        this.release(key, node);
      }
      return;
    }
    if (!lookup) this.lookups.set(key, (lookup = new Map()));
    let current = this.root;
    if (data.parentHash !== null) {
      const parent = lookup.get(data.parentHash);
      if (!parent) return;
      current = parent;
    }
    for (let i = 0; i < data.blockHashes.length; i++) {
      const engine = data.blockHashes[i]!;
      const local = data.tokensHashes[i]!;
      const previous = lookup.get(engine);
      let child = current.children.get(local);
      if (child && previous === child) {
        current = child;
        continue;
      }
      if (previous && this.isAncestorOrSelf(previous, current)) return;
      if (!child) {
        child = { parent: current, local, children: new Map(), holders: new Map() };
        current.children.set(local, child);
      }
      if (previous) this.release(key, previous);
      child.holders.set(key, (child.holders.get(key) ?? 0) + 1);
      lookup.set(engine, child);
      current = child;
    }
  }

  /** Clears a rank; `keep` leaves it known with an empty table. */
  clear(key: string, keep: boolean): void {
    const lookup = this.lookups.get(key);
    for (const node of lookup?.values() ?? []) this.release(key, node);
    if (keep) this.lookups.set(key, new Map());
    else this.lookups.delete(key);
  }

  removeWorker(workerId: bigint): void {
    for (const key of [...this.lookups.keys()]) if (key.startsWith(`${workerId}/`)) this.clear(key, false);
  }

  /** Per rank: the number of leading query blocks it holds along the path from the root. */
  findMatches(query: BigUint64Array): Map<string, number> {
    const scores = new Map<string, number>();
    const path: ModelNode[] = [];
    let node = this.root;
    for (const local of query) {
      const child = node.children.get(local);
      if (!child) break;
      path.push(child);
      node = child;
    }
    for (const key of this.lookups.keys()) {
      let depth = 0;
      while (depth < path.length && path[depth]!.holders.has(key)) depth++;
      if (depth > 0) scores.set(key, depth);
    }
    return scores;
  }

  treeSize(key: string): number {
    return this.lookups.get(key)?.size ?? 0;
  }

  get size(): number {
    let total = 0;
    for (const lookup of this.lookups.values()) total += lookup.size;
    return total;
  }

  /** Entries of a rank whose node is reachable from the root through nodes the rank also holds. */
  reachableEntries(key: string): number {
    let count = 0;
    for (const node of this.lookups.get(key)?.values() ?? []) if (this.reachableFor(key, node)) count++;
    return count;
  }

  /** Local-hash paths from the root to every attached node: queries that reach deep into the tree. */
  paths(): BigUint64Array[] {
    const out: BigUint64Array[] = [];
    const walk = (node: ModelNode, prefix: bigint[]) => {
      for (const child of node.children.values()) {
        const path = [...prefix, child.local];
        out.push(BigUint64Array.from(path));
        walk(child, path);
      }
    };
    walk(this.root, []);
    return out;
  }

  workers(): WorkerRank[] {
    return [...this.lookups.keys()].map((key) => {
      const [id, rank] = key.split("/");
      return { workerId: BigInt(id!), dpRank: Number(rank) };
    });
  }

  private reachableFor(key: string, node: ModelNode): boolean {
    for (let n: ModelNode | null = node; n !== this.root; n = n.parent) {
      if (!n || !n.holders.has(key)) return false;
      if (n.parent && n.parent.children.get(n.local) !== n) return false;
    }
    return true;
  }

  private release(key: string, node: ModelNode): void {
    const refs = node.holders.get(key)!;
    if (refs > 1) return void node.holders.set(key, refs - 1);
    node.holders.delete(key);
    if (node.holders.size > 0) return;
    if (node.parent && node.parent.children.get(node.local) === node) node.parent.children.delete(node.local);
    node.parent = null;
    for (const child of node.children.values()) child.parent = null;
    node.children.clear();
  }

  private isAncestorOrSelf(candidate: ModelNode, node: ModelNode): boolean {
    for (let n: ModelNode | null = node; n; n = n.parent) if (n === candidate) return true;
    return false;
  }
}
