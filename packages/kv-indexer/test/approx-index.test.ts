import { describe, expect, it } from "vitest";
import { ApproxIndex, type WorkerRank } from "../src/index.js";

const a: WorkerRank = { workerId: 1n, dpRank: 0 };
const b: WorkerRank = { workerId: 2n, dpRank: 0 };

function blocks(from: number, count: number): BigUint64Array {
  return BigUint64Array.from({ length: count }, (_, i) => (BigInt(from + i) * 0x9e3779b97f4a7c15n) % 2n ** 64n);
}

function clock(start = 0) {
  const state = { now: start };
  return { state, now: () => state.now };
}

function depths(index: ApproxIndex, query: BigUint64Array): Record<string, number> {
  return Object.fromEntries(index.findMatches(query).scores);
}

describe("ApproxIndex", () => {
  it("records a routed request's full blocks for the chosen worker rank", () => {
    const index = new ApproxIndex({ now: clock().now });
    const prompt = blocks(0, 4);
    index.recordRouting(a, prompt);
    index.recordRouting(b, prompt.subarray(0, 2));
    expect(depths(index, prompt)).toEqual({ "1/0": 4, "2/0": 2 });
    expect(Object.fromEntries(index.findMatches(prompt).treeSizes)).toEqual({ "1/0": 4, "2/0": 2 });
    expect(index.size).toBe(6);
    // Prefix-keyed: the same block after a different prefix does not match.
    expect(depths(index, BigUint64Array.of(prompt[1]!))).toEqual({});
    index.recordRouting(a, new BigUint64Array(0));
    expect(index.size).toBe(6);
  });

  it("expires entries after the TTL (120 s by default) unless routing refreshes them", () => {
    const { state, now } = clock(1_000);
    const index = new ApproxIndex({ now });
    const prompt = blocks(0, 3);
    index.recordRouting(a, prompt);
    state.now += 60_000;
    index.recordRouting(a, prompt.subarray(0, 1));
    state.now += 59_999;
    expect(depths(index, prompt)).toEqual({ "1/0": 3 });
    state.now += 1;
    expect(index.expire()).toBe(2);
    expect(depths(index, prompt)).toEqual({ "1/0": 1 });
    state.now += 60_000;
    expect(depths(index, prompt)).toEqual({});
    expect(index.size).toBe(0);
    expect(index.expire()).toBe(0);
  });

  it("honours a custom TTL", () => {
    const { state, now } = clock();
    const index = new ApproxIndex({ ttlMs: 5_000, now });
    index.recordRouting(a, blocks(0, 2));
    state.now = 4_999;
    expect(index.size).toBe(2);
    state.now = 5_000;
    expect(index.expire()).toBe(2);
  });

  it("prunes to the target ratio, deepest positions first among equal expiries", () => {
    const index = new ApproxIndex({ maxEntries: 10, now: clock().now });
    const prompt = blocks(0, 11);
    index.recordRouting(a, prompt);
    expect(index.size).toBe(8);
    expect(depths(index, prompt)).toEqual({ "1/0": 8 });
  });

  it("prunes the earliest-expiring entries first", () => {
    const { state, now } = clock();
    const index = new ApproxIndex({ maxEntries: 10, pruneTargetRatio: 0.5, now });
    const older = blocks(0, 5);
    const newer = blocks(100, 6);
    index.recordRouting(a, older);
    state.now = 10;
    index.recordRouting(b, newer);
    expect(index.size).toBe(5);
    expect(depths(index, older)).toEqual({});
    expect(depths(index, newer)).toEqual({ "2/0": 5 });
  });

  it("stays exact across many refreshes (stale heap items are discarded)", () => {
    const { state, now } = clock();
    const index = new ApproxIndex({ ttlMs: 1_000, now });
    const prompt = blocks(0, 8);
    for (let i = 0; i < 5_000; i++) {
      state.now = i;
      index.recordRouting(i % 2 === 0 ? a : b, prompt.subarray(0, 1 + (i % 8)));
    }
    expect(index.size).toBe(15);
    expect(depths(index, prompt)).toEqual({ "1/0": 7, "2/0": 8 });
    state.now = 4_999 + 1_000;
    expect(index.expire()).toBe(15);
    expect(index.size).toBe(0);
  });

  it("removeWorker forgets every rank of a worker", () => {
    const index = new ApproxIndex({ now: clock().now });
    const prompt = blocks(0, 3);
    index.recordRouting(a, prompt);
    index.recordRouting({ workerId: 1n, dpRank: 1 }, prompt);
    index.recordRouting(b, prompt);
    index.removeWorker(1n);
    expect(depths(index, prompt)).toEqual({ "2/0": 3 });
    expect(index.size).toBe(3);
    index.removeWorker(99n);
    expect(index.size).toBe(3);
  });
});
