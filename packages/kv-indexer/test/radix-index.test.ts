import { describe, expect, it } from "vitest";
import { RadixIndex, RouterEvents, type ApplyError, type RouterEvent, type WorkerRank } from "../src/index.js";

const HIGH = (1n << 64n) - 3n; // above 2^63
const w: WorkerRank = { workerId: 1n, dpRank: 0 };
const v: WorkerRank = { workerId: 2n, dpRank: 0 };

/** A run of blocks whose engine hash is `100 + local` (so tests can name blocks by local hash). */
function run(locals: bigint[]): Array<{ blockHash: bigint; tokensHash: bigint }> {
  return locals.map((local) => ({ blockHash: 100n + local, tokensHash: local }));
}

function q(...locals: bigint[]): BigUint64Array {
  return BigUint64Array.from(locals);
}

function scores(index: RadixIndex, ...locals: bigint[]): Record<string, number> {
  return Object.fromEntries(index.findMatches(q(...locals)).scores);
}

/** An index whose event ids are not tracked, with every reported error collected. */
function untracked(): { index: RadixIndex; errors: ApplyError[] } {
  const errors: ApplyError[] = [];
  return { index: new RadixIndex({ trackEventIds: false, onError: (e) => errors.push(e) }), errors };
}

describe("RadixIndex stored events", () => {
  it("stores runs from the root and continuations under their parent", () => {
    const { index } = untracked();
    expect(index.apply(RouterEvents.stored(w, 0n, null, run([1n, 2n])))).toBe("applied");
    expect(index.apply(RouterEvents.stored(w, 1n, 102n, run([3n])))).toBe("applied");
    expect(index.apply(RouterEvents.stored(v, 0n, null, run([1n])))).toBe("applied");
    const result = index.findMatches(q(1n, 2n, 3n, 4n));
    expect(Object.fromEntries(result.scores)).toEqual({ "1/0": 3, "2/0": 1 });
    expect(Object.fromEntries(result.treeSizes)).toEqual({ "1/0": 3, "2/0": 1 });
    expect(index.size).toBe(4);
    expect(scores(index, 2n)).toEqual({});
    expect(scores(index)).toEqual({});
  });

  it("skips the whole run when the parent is unknown for that worker rank", () => {
    const { index, errors } = untracked();
    index.apply(RouterEvents.stored(v, 0n, null, run([1n])));
    // 101 is known, but only for v.
    expect(index.apply(RouterEvents.stored(w, 0n, 101n, run([2n, 3n])))).toBe("skipped");
    expect(errors.map((e) => [e.kind, e.workerKey])).toEqual([["parent_not_found", "1/0"]]);
    expect(index.errorCounts.parent_not_found).toBe(1);
    expect(index.size).toBe(1);
  });

  it("rejects the rest of a run at a block that would be its own ancestor", () => {
    const { index, errors } = untracked();
    const blocks = [
      { blockHash: 11n, tokensHash: 1n },
      { blockHash: 12n, tokensHash: 2n },
      { blockHash: 11n, tokensHash: 3n },
      { blockHash: 14n, tokensHash: 4n },
    ];
    expect(index.apply(RouterEvents.stored(w, 0n, null, blocks))).toBe("partial");
    expect(errors.map((e) => e.kind)).toEqual(["invalid_block_sequence"]);
    expect(scores(index, 1n, 2n, 3n, 4n)).toEqual({ "1/0": 2 });
    // A block continuing itself.
    expect(index.apply(RouterEvents.stored(w, 1n, 12n, [{ blockHash: 12n, tokensHash: 9n }]))).toBe("skipped");
    expect(index.errorCounts.invalid_block_sequence).toBe(2);
    expect(index.size).toBe(2);
  });

  it("re-storing a held block at the same place changes nothing; at another place it moves", () => {
    const { index } = untracked();
    index.apply(RouterEvents.stored(w, 0n, null, run([1n, 2n])));
    expect(index.apply(RouterEvents.stored(w, 1n, null, run([1n, 2n])))).toBe("applied");
    expect(index.size).toBe(2);
    // Engine hash 102 now continues 101 with local hash 5 instead of 2.
    index.apply(RouterEvents.stored(w, 2n, 101n, [{ blockHash: 102n, tokensHash: 5n }]));
    expect(index.size).toBe(2);
    expect(scores(index, 1n, 2n)).toEqual({ "1/0": 1 });
    expect(scores(index, 1n, 5n)).toEqual({ "1/0": 2 });
  });

  it("counts two engine hashes of one rank naming the same block as two entries", () => {
    const { index } = untracked();
    index.apply(RouterEvents.stored(w, 0n, null, [{ blockHash: 7n, tokensHash: 1n }]));
    index.apply(RouterEvents.stored(w, 1n, null, [{ blockHash: 8n, tokensHash: 1n }]));
    expect(index.size).toBe(2);
    index.apply(RouterEvents.removed(w, 2n, [7n]));
    expect(scores(index, 1n)).toEqual({ "1/0": 1 });
    index.apply(RouterEvents.removed(w, 3n, [8n]));
    expect(scores(index, 1n)).toEqual({});
    expect(index.size).toBe(0);
  });

  it("handles hashes above 2^63", () => {
    const { index } = untracked();
    index.apply(RouterEvents.stored(w, 0n, null, [{ blockHash: HIGH, tokensHash: HIGH - 1n }]));
    index.apply(RouterEvents.stored(w, 1n, HIGH, [{ blockHash: HIGH - 2n, tokensHash: HIGH }]));
    expect(scores(index, HIGH - 1n, HIGH)).toEqual({ "1/0": 2 });
    expect(scores(index, (HIGH - 1n) & 0xffffffffn, HIGH)).toEqual({});
    expect(index.dump().map((e) => e.data.type === "stored" && [e.data.parentHash, e.data.blockHashes[0]])).toEqual([
      [null, HIGH],
      [HIGH, HIGH - 2n],
    ]);
  });
});

describe("RadixIndex removed and cleared events", () => {
  it("skips unknown hashes and applies the rest", () => {
    const { index, errors } = untracked();
    index.apply(RouterEvents.stored(w, 0n, null, run([1n, 2n])));
    expect(index.apply(RouterEvents.removed(w, 1n, [999n, 102n]))).toBe("partial");
    expect(errors.map((e) => e.kind)).toEqual(["block_not_found"]);
    expect(index.apply(RouterEvents.removed(w, 2n, [999n]))).toBe("skipped");
    expect(index.errorCounts.block_not_found).toBe(2);
    expect(scores(index, 1n, 2n)).toEqual({ "1/0": 1 });
  });

  it("cascades: a block no rank holds any more takes its descendants off the tree", () => {
    const { index } = untracked();
    index.apply(RouterEvents.stored(w, 0n, null, run([1n, 2n, 3n])));
    index.apply(RouterEvents.stored(v, 0n, null, run([1n, 2n])));
    index.apply(RouterEvents.removed(w, 1n, [101n]));
    // w still holds 2 and 3, but not the prefix: it matches nothing; v is untouched.
    expect(scores(index, 1n, 2n, 3n)).toEqual({ "2/0": 2 });
    index.apply(RouterEvents.removed(v, 1n, [101n]));
    expect(scores(index, 1n, 2n, 3n)).toEqual({});
    expect(index.findMatches(q(1n)).treeSizes.size).toBe(0);
    // w re-stores block 1 only: its old blocks 2 and 3 were detached with the old node.
    index.apply(RouterEvents.stored(w, 2n, null, run([1n])));
    expect(scores(index, 1n, 2n, 3n)).toEqual({ "1/0": 1 });
    expect(index.findMatches(q(1n)).treeSizes.get("1/0")).toBe(3);
    // Its detached blocks can still be removed by hash.
    expect(index.apply(RouterEvents.removed(w, 3n, [102n, 103n]))).toBe("applied");
    expect(index.size).toBe(2);
  });

  it("keeps child lookups exact while a node's child count goes up and down", () => {
    const { index } = untracked();
    const x: WorkerRank = { workerId: 3n, dpRank: 0 };
    index.apply(RouterEvents.stored(w, 0n, null, run([1n])));
    index.apply(RouterEvents.stored(v, 0n, null, run([2n])));
    index.apply(RouterEvents.removed(v, 1n, [102n]));
    index.apply(RouterEvents.removed(w, 1n, [101n]));
    index.apply(RouterEvents.stored(x, 0n, null, run([3n])));
    index.apply(RouterEvents.stored(x, 1n, null, run([4n])));
    expect(scores(index, 1n)).toEqual({});
    expect(scores(index, 2n)).toEqual({});
    expect(scores(index, 3n)).toEqual({ "3/0": 1 });
    index.apply(RouterEvents.stored(v, 2n, null, run([1n])));
    expect(scores(index, 1n)).toEqual({ "2/0": 1 });
  });

  it("clears only the emitting (worker, dp rank)", () => {
    const { index } = untracked();
    const w1: WorkerRank = { workerId: 1n, dpRank: 1 };
    index.apply(RouterEvents.stored(w, 0n, null, run([1n, 2n])));
    index.apply(RouterEvents.stored(w1, 0n, null, run([1n, 2n])));
    expect(index.apply(RouterEvents.cleared(w, 1n))).toBe("applied");
    expect(scores(index, 1n, 2n)).toEqual({ "1/1": 2 });
    expect(index.workers()).toEqual(expect.arrayContaining([w, w1]));
    expect(index.size).toBe(2);
    // The cleared rank starts again from the root.
    index.apply(RouterEvents.stored(w, 2n, null, run([1n])));
    expect(scores(index, 1n, 2n)).toEqual({ "1/0": 1, "1/1": 2 });
  });

  it("clearWorkerRank, removeWorkerRank and removeWorker", () => {
    const { index } = untracked();
    const w1: WorkerRank = { workerId: 1n, dpRank: 1 };
    for (const rank of [w, w1, v]) index.apply(RouterEvents.stored(rank, 0n, null, run([1n])));
    index.clearWorkerRank(1n, 1);
    expect(scores(index, 1n)).toEqual({ "1/0": 1, "2/0": 1 });
    expect(index.workers()).toHaveLength(3);
    index.removeWorkerRank(2n, 0);
    expect(index.workers()).toEqual(expect.arrayContaining([w, w1]));
    expect(index.workers()).toHaveLength(2);
    index.apply(RouterEvents.stored(w1, 1n, null, run([1n])));
    index.removeWorker(1n);
    expect(index.workers()).toEqual([]);
    expect(scores(index, 1n)).toEqual({});
    expect(index.size).toBe(0);
    // Unknown workers are a no-op.
    index.removeWorker(42n);
    index.clearWorkerRank(42n, 0);
    index.removeWorkerRank(42n, 0);
  });

  it("handles more worker ranks than fit in one bitset word", () => {
    const { index } = untracked();
    const ranks = Array.from({ length: 70 }, (_, i) => ({ workerId: BigInt(i % 10), dpRank: Math.floor(i / 10) }));
    ranks.forEach((rank, i) => index.apply(RouterEvents.stored(rank, 0n, null, run(i % 2 === 0 ? [1n, 2n] : [1n]))));
    const result = index.findMatches(q(1n, 2n));
    expect(result.scores.size).toBe(70);
    ranks.forEach((rank, i) => expect(result.scores.get(`${rank.workerId}/${rank.dpRank}`)).toBe(i % 2 === 0 ? 2 : 1));
    index.removeWorker(0n);
    expect(index.findMatches(q(1n, 2n)).scores.size).toBe(63);
  });
});

describe("RadixIndex robustness", () => {
  it("counts malformed events as invalid_event instead of throwing", () => {
    const { index, errors } = untracked();
    const mismatched: RouterEvent = {
      ...w,
      eventId: 0n,
      storageTier: "device",
      data: {
        type: "stored",
        parentHash: null,
        blockHashes: BigUint64Array.of(1n, 2n),
        tokensHashes: BigUint64Array.of(1n),
      },
    };
    expect(index.apply(mismatched)).toBe("skipped");
    expect(index.apply({ ...w, eventId: 1n, storageTier: "device", data: null } as unknown as RouterEvent)).toBe(
      "skipped",
    );
    expect(
      index.apply({
        ...w,
        eventId: 2n,
        storageTier: "device",
        data: { type: "removed", blockHashes: [1.5] },
      } as unknown as RouterEvent),
    ).toBe("skipped");
    expect(index.apply(null as unknown as RouterEvent)).toBe("skipped");
    expect(errors.map((e) => e.kind)).toEqual(["invalid_event", "invalid_event", "invalid_event", "invalid_event"]);
    expect(index.errorCounts.invalid_event).toBe(4);
    expect(index.size).toBe(0);
  });

  it("keeps applying when a listener throws", () => {
    const index = new RadixIndex({
      onError: () => {
        throw new Error("listener bug");
      },
    });
    expect(index.apply(RouterEvents.removed(w, 0n, [5n]))).toBe("skipped");
    expect(index.apply(RouterEvents.stored(w, 1n, null, run([1n])))).toBe("applied");
    expect(index.errorCounts.block_not_found).toBe(1);
  });

  it("applies events of any storage tier and labels its dump with its own tier", () => {
    const index = new RadixIndex({ storageTier: "host_pinned" });
    expect(index.apply(RouterEvents.stored(w, 0n, null, run([1n]), "host_pinned"))).toBe("applied");
    expect(index.dump().map((e) => e.storageTier)).toEqual(["host_pinned"]);
  });
});

describe("RadixIndex dump", () => {
  it("emits breadth-first single-block stored events numbered per worker rank", () => {
    const { index } = untracked();
    index.apply(RouterEvents.stored(w, 7n, null, run([1n, 2n, 3n])));
    index.apply(RouterEvents.stored(v, 9n, null, run([1n, 4n])));
    const dump = index.dump();
    const summary = dump.map((e) => {
      if (e.data.type !== "stored") throw new Error("dump holds stored events only");
      expect(e.data.blockHashes).toHaveLength(1);
      return [`${e.workerId}/${e.dpRank}`, e.eventId, e.data.parentHash, e.data.blockHashes[0], e.data.tokensHashes[0]];
    });
    const depthOf = (local: bigint) => [1n, 2n, 3n].indexOf(local) + [1n, 4n].indexOf(local) + 1;
    const depths = summary.map((row) => depthOf(row[4] as bigint));
    expect([...depths].sort()).toEqual(depths);
    expect(summary).toEqual(
      expect.arrayContaining([
        ["1/0", 0n, null, 101n, 1n],
        ["2/0", 0n, null, 101n, 1n],
        ["1/0", 1n, 101n, 102n, 2n],
        ["2/0", 1n, 101n, 104n, 4n],
        ["1/0", 2n, 102n, 103n, 3n],
      ]),
    );
    expect(summary).toHaveLength(5);
    const replayed = new RadixIndex();
    for (const event of dump) expect(replayed.apply(event)).toBe("applied");
    expect(Object.fromEntries(replayed.findMatches(q(1n, 2n, 3n)).scores)).toEqual({ "1/0": 3, "2/0": 1 });
  });

  it("keeps each rank's own engine hashes when ranks disagree on them", () => {
    const { index } = untracked();
    index.apply(
      RouterEvents.stored(w, 0n, null, [
        { blockHash: 11n, tokensHash: 1n },
        { blockHash: 12n, tokensHash: 2n },
      ]),
    );
    index.apply(
      RouterEvents.stored(v, 0n, null, [
        { blockHash: 21n, tokensHash: 1n },
        { blockHash: 22n, tokensHash: 2n },
      ]),
    );
    const replayed = new RadixIndex();
    for (const event of index.dump()) replayed.apply(event);
    // v can keep continuing and removing by its own hashes after a restore.
    expect(replayed.apply(RouterEvents.stored(v, 2n, 22n, [{ blockHash: 23n, tokensHash: 3n }]))).toBe("applied");
    expect(replayed.apply(RouterEvents.removed(w, 2n, [12n]))).toBe("applied");
    expect(Object.fromEntries(replayed.findMatches(q(1n, 2n, 3n)).scores)).toEqual({ "1/0": 1, "2/0": 3 });
  });
});
