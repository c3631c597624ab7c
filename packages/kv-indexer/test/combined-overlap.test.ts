import { describe, expect, it } from "vitest";
import { ApproxIndex, CombinedOverlap, RadixIndex, RouterEvents, type OverlapScores } from "../src/index.js";

const query = BigUint64Array.of(1n, 2n, 3n);

describe("CombinedOverlap", () => {
  it("takes per worker rank the deeper of the primary and side overlaps", () => {
    const primary = new RadixIndex();
    primary.apply(
      RouterEvents.stored({ workerId: 1n, dpRank: 0 }, 0n, null, [
        { blockHash: 11n, tokensHash: 1n },
        { blockHash: 12n, tokensHash: 2n },
        { blockHash: 13n, tokensHash: 3n },
      ]),
    );
    primary.apply(RouterEvents.stored({ workerId: 2n, dpRank: 0 }, 0n, null, [{ blockHash: 21n, tokensHash: 1n }]));
    const side = new ApproxIndex({ ttlMs: 5_000, now: () => 0 });
    side.recordRouting({ workerId: 1n, dpRank: 0 }, query.subarray(0, 1));
    side.recordRouting({ workerId: 2n, dpRank: 0 }, query);
    side.recordRouting({ workerId: 3n, dpRank: 0 }, query.subarray(0, 2));
    const combined = new CombinedOverlap(primary, side).findMatches(query);
    expect(Object.fromEntries(combined.scores)).toEqual({ "1/0": 3, "2/0": 3, "3/0": 2 });
    // Tree sizes come from the primary index when it knows the rank.
    expect(Object.fromEntries(combined.treeSizes)).toEqual({ "1/0": 3, "2/0": 1, "3/0": 2 });
  });

  it("returns the primary answer unchanged when the side index has nothing", () => {
    const answer: OverlapScores = { scores: new Map([["1/0", 2]]), treeSizes: new Map([["1/0", 9]]) };
    const primary = { findMatches: () => answer };
    const side = { findMatches: (): OverlapScores => ({ scores: new Map(), treeSizes: new Map() }) };
    expect(new CombinedOverlap(primary, side).findMatches(query)).toBe(answer);
  });
});
