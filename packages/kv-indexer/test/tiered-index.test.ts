import { describe, expect, it } from "vitest";
import { RouterEvents, TieredIndex } from "../src/index.js";

const W = { workerId: 7n, dpRank: 0 };
const block = (i: number) => ({ blockHash: BigInt(100 + i), tokensHash: BigInt(1000 + i) });
const query = (n: number) => BigUint64Array.from({ length: n }, (_, i) => BigInt(1000 + i));

describe("TieredIndex", () => {
  it("keeps each storage tier in its own index under one event-id sequence per rank", () => {
    const gaps: string[] = [];
    const index = new TieredIndex({ onGap: (g) => gaps.push(`${g.from}-${g.to}`) });
    expect(index.apply(RouterEvents.stored(W, 0n, null, [block(0), block(1)]))).toBe("applied");
    expect(index.apply(RouterEvents.stored(W, 1n, null, [block(0), block(1), block(2)], "host_pinned"))).toBe(
      "applied",
    );
    expect(index.apply(RouterEvents.stored(W, 2n, 101n, [block(2)]))).toBe("applied");
    expect(gaps).toEqual([]);
    expect(index.lastEventId(7n, 0)).toBe(2n);
    expect(index.findMatches(query(3)).scores.get("7/0")).toBe(3);
    // Lower tiers are continuations of the device match: the host copies of blocks 0-2 add nothing.
    expect(index.continuations(query(3), new Map([["7/0", 3]])).host.get("7/0")).toBeUndefined();
    expect(index.continuations(query(3), new Map()).host.get("7/0")).toBe(3);
    expect(index.tier("disk")).toBeUndefined();
    // A replayed lower-tier event is a duplicate like any other.
    expect(index.apply(RouterEvents.stored(W, 1n, null, [block(5)], "host_pinned"))).toBe("duplicate");
  });

  it("clears every tier of the rank on a device clear, and not on a duplicate one", () => {
    const index = new TieredIndex();
    index.apply(RouterEvents.stored(W, 0n, null, [block(0)]));
    index.apply(RouterEvents.stored(W, 1n, null, [block(0)], "disk"));
    index.apply(RouterEvents.cleared(W, 2n));
    expect(index.size + index.tier("disk")!.size).toBe(0);
    index.apply(RouterEvents.stored(W, 3n, null, [block(0)], "disk"));
    expect(index.apply(RouterEvents.cleared(W, 2n))).toBe("duplicate");
    expect(index.tier("disk")!.size).toBe(1);
  });

  it("forgets a removed worker in every tier", () => {
    const index = new TieredIndex();
    index.apply(RouterEvents.stored(W, 0n, null, [block(0)]));
    index.apply(RouterEvents.stored(W, 1n, null, [block(1)], "host_pinned"));
    index.apply(RouterEvents.stored({ workerId: 8n, dpRank: 0 }, 0n, null, [block(0)]));
    index.removeWorker(7n);
    expect(index.lastEventId(7n, 0)).toBeUndefined();
    expect(index.tier("host_pinned")!.size).toBe(0);
    expect([...index.findMatches(query(1)).scores.keys()]).toEqual(["8/0"]);
  });
});
