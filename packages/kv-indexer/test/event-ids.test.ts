import { describe, expect, it } from "vitest";
import { MAX_MISSING_RANGES } from "../src/event-tracker.js";
import { RadixIndex, RouterEvents, type EventGap, type WorkerRank } from "../src/index.js";

const w: WorkerRank = { workerId: 5n, dpRank: 0 };
const w1: WorkerRank = { workerId: 5n, dpRank: 1 };

/** A stored event whose block is named after its event id, so applied events are visible in `size`. */
function storedWithId(worker: WorkerRank, id: bigint) {
  return RouterEvents.stored(worker, id, null, [{ blockHash: 1000n + id, tokensHash: id }]);
}

function tracked(): { index: RadixIndex; gaps: Array<[string, bigint, bigint]> } {
  const gaps: Array<[string, bigint, bigint]> = [];
  const index = new RadixIndex({ onGap: (g: EventGap) => gaps.push([g.workerKey, g.from, g.to]) });
  return { index, gaps };
}

describe("event-id tracking", () => {
  it("accepts a first id of 0 silently and consecutive ids after it", () => {
    const { index, gaps } = tracked();
    for (const id of [0n, 1n, 2n]) expect(index.apply(storedWithId(w, id))).toBe("applied");
    expect(gaps).toEqual([]);
    expect(index.lastEventId(5n, 0)).toBe(2n);
    expect(index.size).toBe(3);
  });

  it("reports everything before a first id above 0 as a gap", () => {
    const { index, gaps } = tracked();
    expect(index.apply(storedWithId(w, 4n))).toBe("applied");
    expect(gaps).toEqual([["5/0", 0n, 3n]]);
  });

  it("reports a gap, applies missing ids once when they arrive late, and drops duplicates and stale ids", () => {
    const { index, gaps } = tracked();
    for (const id of [0n, 1n, 2n]) index.apply(storedWithId(w, id));
    expect(index.apply(storedWithId(w, 6n))).toBe("applied");
    expect(gaps).toEqual([["5/0", 3n, 5n]]);
    expect(index.apply(storedWithId(w, 2n))).toBe("duplicate");
    expect(index.apply(storedWithId(w, 6n))).toBe("duplicate");
    // Recovered events of the gap, out of order.
    expect(index.apply(storedWithId(w, 4n))).toBe("applied");
    expect(index.apply(storedWithId(w, 4n))).toBe("duplicate");
    expect(index.apply(storedWithId(w, 3n))).toBe("applied");
    expect(index.apply(storedWithId(w, 5n))).toBe("applied");
    expect(index.apply(storedWithId(w, 5n))).toBe("duplicate");
    expect(index.apply(storedWithId(w, 7n))).toBe("applied");
    expect(gaps).toHaveLength(1);
    expect(index.lastEventId(5n, 0)).toBe(7n);
    expect(index.size).toBe(8);
  });

  it("treats a cleared event as a barrier: late events from before it stay out", () => {
    const { index, gaps } = tracked();
    index.apply(storedWithId(w, 0n));
    expect(index.apply(RouterEvents.cleared(w, 3n))).toBe("applied");
    expect(gaps).toEqual([["5/0", 1n, 2n]]);
    expect(index.apply(storedWithId(w, 1n))).toBe("duplicate");
    expect(index.apply(storedWithId(w, 2n))).toBe("duplicate");
    expect(index.size).toBe(0);
    expect(index.apply(storedWithId(w, 4n))).toBe("applied");
    expect(index.size).toBe(1);
  });

  it("tracks each dp rank on its own", () => {
    const { index, gaps } = tracked();
    index.apply(storedWithId(w, 0n));
    index.apply(storedWithId(w1, 0n));
    index.apply(storedWithId(w1, 1n));
    expect(index.apply(storedWithId(w, 1n))).toBe("applied");
    expect(index.apply(storedWithId(w1, 3n))).toBe("applied");
    expect(gaps).toEqual([["5/1", 2n, 2n]]);
    expect(index.lastEventId(5n, 0)).toBe(1n);
    expect(index.lastEventId(5n, 1)).toBe(3n);
    expect(index.lastEventId(6n, 0)).toBeUndefined();
  });

  it("works with ids beyond 2^53 and up to 2^64 - 1", () => {
    const { index, gaps } = tracked();
    const big = 2n ** 60n;
    index.apply(storedWithId(w, 0n));
    expect(index.apply(storedWithId(w, big))).toBe("applied");
    expect(index.apply(storedWithId(w, big + 1n))).toBe("applied");
    expect(index.apply(storedWithId(w, big + 1n))).toBe("duplicate");
    expect(index.apply(storedWithId(w, 2n ** 64n - 1n))).toBe("applied");
    expect(gaps).toEqual([
      ["5/0", 1n, big - 1n],
      ["5/0", big + 2n, 2n ** 64n - 2n],
    ]);
    expect(index.apply(storedWithId(w, big - 1n))).toBe("applied");
    expect(index.lastEventId(5n, 0)).toBe(2n ** 64n - 1n);
  });

  it("stays exact across 2^53, where ids stop fitting a double", () => {
    const { index, gaps } = tracked();
    const edge = 2n ** 53n;
    index.resetEventIds(5n, 0, edge - 2n);
    for (const id of [edge - 2n, edge - 1n, edge, edge + 1n]) expect(index.apply(storedWithId(w, id))).toBe("applied");
    expect(index.apply(storedWithId(w, edge + 3n))).toBe("applied");
    expect(gaps).toEqual([["5/0", edge + 2n, edge + 2n]]);
    expect(index.apply(storedWithId(w, edge))).toBe("duplicate");
  });

  it("resetEventIds forgets the history, optionally expecting a given next id", () => {
    const { index, gaps } = tracked();
    for (const id of [0n, 1n, 2n, 3n]) index.apply(storedWithId(w, id));
    index.resetEventIds(5n, 0);
    expect(index.lastEventId(5n, 0)).toBeUndefined();
    // A restarted publisher starts again at 0: neither a duplicate nor a gap.
    expect(index.apply(storedWithId(w, 0n))).toBe("applied");
    index.resetEventIds(5n, 0, 10n);
    expect(index.apply(storedWithId(w, 10n))).toBe("applied");
    expect(gaps).toEqual([]);
    expect(index.apply(storedWithId(w, 9n))).toBe("duplicate");
  });

  it("drops the history of removed ranks and accepts everything when tracking is off", () => {
    const { index } = tracked();
    index.apply(storedWithId(w, 0n));
    index.removeWorker(5n);
    expect(index.lastEventId(5n, 0)).toBeUndefined();
    expect(index.apply(storedWithId(w, 0n))).toBe("applied");

    const untracked = new RadixIndex({ trackEventIds: false });
    expect(untracked.apply(storedWithId(w, 3n))).toBe("applied");
    expect(untracked.apply(storedWithId(w, 3n))).toBe("applied");
    expect(untracked.lastEventId(5n, 0)).toBeUndefined();
  });
});

describe("missing-range memory", () => {
  it(`remembers at most ${MAX_MISSING_RANGES} missing ranges per rank, forgetting the oldest`, () => {
    const { index, gaps } = tracked();
    index.apply(storedWithId(w, 0n));
    // Ids 2, 4, 6, ...: every odd id is a one-id gap.
    for (let i = 1; i <= MAX_MISSING_RANGES + 2; i++) index.apply(storedWithId(w, BigInt(2 * i)));
    expect(gaps).toHaveLength(MAX_MISSING_RANGES + 2);
    expect(index.apply(storedWithId(w, 1n))).toBe("duplicate");
    expect(index.apply(storedWithId(w, 3n))).toBe("duplicate");
    expect(index.apply(storedWithId(w, 5n))).toBe("applied");
  });
});
