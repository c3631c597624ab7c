import type { OverlapScores } from "./index-api.js";
import type { PrefixTree } from "./prefix-tree.js";
import type { HalvesScratch } from "./u64-halves.js";
import type { WorkerSlots } from "./worker-slots.js";

/** Runs a query on the tree and keys the per-slot depths and tree sizes by worker-rank key. */
export function findOverlap(
  tree: PrefixTree,
  slots: WorkerSlots,
  scratch: HalvesScratch,
  localHashes: BigUint64Array,
): OverlapScores {
  const matched = tree.findMatches(scratch.load(localHashes), localHashes.length);
  const scores = new Map<string, number>();
  const treeSizes = new Map<string, number>();
  for (let i = 0; i < matched; i++) {
    const slot = tree.matchSlots[i]!;
    const key = slots.key(slot);
    scores.set(key, tree.matchDepths[i]!);
    treeSizes.set(key, tree.slotSize(slot));
  }
  return { scores, treeSizes };
}
