import type { WorkerRankKey } from "./events.js";
import type { OverlapScores, OverlapSource } from "./index-api.js";

/**
 * Overlap of two sources combined per worker rank with max(): the event-driven index plus a
 * predict-on-route side index (an `ApproxIndex` with a short TTL) that covers requests routed before
 * their blocks' `stored` events arrive. A rank's tree size is the primary's when it has one there,
 * otherwise the side index's.
 */
export class CombinedOverlap implements OverlapSource {
  constructor(
    private readonly primary: OverlapSource,
    private readonly side: OverlapSource,
  ) {}

  findMatches(localHashes: BigUint64Array): OverlapScores {
    const primary = this.primary.findMatches(localHashes);
    const side = this.side.findMatches(localHashes);
    if (side.scores.size === 0) return primary;
    const scores = new Map<WorkerRankKey, number>(primary.scores);
    const treeSizes = new Map<WorkerRankKey, number>(primary.treeSizes);
    for (const [key, depth] of side.scores) {
      if (depth > (scores.get(key) ?? 0)) scores.set(key, depth);
      if (!treeSizes.has(key)) treeSizes.set(key, side.treeSizes.get(key) ?? 0);
    }
    return { scores, treeSizes };
  }
}
