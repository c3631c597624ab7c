import { seededRng } from "@dynamo/primitives";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_COST_PARAMS,
  classicCost,
  computeCost,
  selectByCost,
  softmaxProbabilities,
  type CostInputs,
} from "../src/index.js";

const load = (over: Partial<CostInputs>): CostInputs => ({
  deviceOverlapBlocks: 0,
  hostOverlapBlocks: 0,
  diskOverlapBlocks: 0,
  activePrefillTokens: 0,
  activeBlocks: 0,
  newBlocks: 0,
  activeRequests: 0,
  ...over,
});

describe("cost function", () => {
  it("reproduces the design-doc example: 18 / 10 / 11, the second worker wins", () => {
    // isl = 8 blocks of 16 tokens; overlap 0 / 3 / 6 leaves 8 / 5 / 2 prefill blocks.
    const request = { isl: 128, blockSize: 16, trackPrefillTokens: true, minActivePrefillTokens: 0 };
    const workers = [
      load({ deviceOverlapBlocks: 0, activeBlocks: 10 }),
      load({ deviceOverlapBlocks: 3, activeBlocks: 5 }),
      load({ deviceOverlapBlocks: 6, activeBlocks: 9 }),
    ];
    const costs = workers.map((w) => computeCost(request, w, DEFAULT_COST_PARAMS));
    expect(costs.map((c) => c.prefillBlocks)).toEqual([8, 5, 2]);
    expect(costs.map((c) => c.cost)).toEqual([18, 10, 11]);
    expect(
      selectByCost(
        costs.map((c) => c.cost),
        0,
        seededRng(1),
      ).index,
    ).toBe(1);
  });

  it("reproduces the full 3-worker table (bs 64, isl 4096) and its softmax probabilities", () => {
    const request = { isl: 4096, blockSize: 64, trackPrefillTokens: true, minActivePrefillTokens: 0 };
    const rows = [
      load({ deviceOverlapBlocks: 48, activePrefillTokens: 2048, activeBlocks: 300, newBlocks: 16 }),
      load({ deviceOverlapBlocks: 0, activePrefillTokens: 0, activeBlocks: 250, newBlocks: 64 }),
      load({ deviceOverlapBlocks: 16, activePrefillTokens: 1024, activeBlocks: 280, newBlocks: 48 }),
    ].map((w) => computeCost(request, w, DEFAULT_COST_PARAMS));
    expect(rows.map((r) => r.rawPrefillBlocks)).toEqual([96, 64, 80]);
    expect(rows.map((r) => r.prefillBlocks)).toEqual([48, 64, 64]);
    expect(rows.map((r) => r.decodeBlocks)).toEqual([316, 314, 328]);
    const costs = rows.map((r) => r.cost);
    expect(costs).toEqual([364, 378, 392]);
    expect(selectByCost(costs, 0, seededRng(7)).index).toBe(0);
    const t1 = softmaxProbabilities(costs, 1);
    const t05 = softmaxProbabilities(costs, 0.5);
    [0.5065, 0.3072, 0.1863].forEach((p, i) => expect(t1[i]).toBeCloseTo(p, 4));
    [0.6652, 0.2447, 0.09].forEach((p, i) => expect(t05[i]).toBeCloseTo(p, 4));
  });

  it("with a tie band, draws uniformly among the costs within the band of the minimum, never beyond it", () => {
    const costs = [364, 378, 392, 365.5, 366];
    const rng = seededRng(3);
    const counts = new Map<number, number>();
    for (let i = 0; i < 3000; i++) {
      const s = selectByCost(costs, 0, rng, 2);
      expect(s.ties).toBe(3);
      counts.set(s.index, (counts.get(s.index) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual([0, 3, 4]);
    for (const n of counts.values()) expect(n).toBeGreaterThan(800); // about 1,000 each
    expect(selectByCost(costs, 0, rng, 0)).toEqual({ index: 0, ties: 1 });
  });

  it("equals the classic form with weight 1 under defaults and device-only overlap", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 256 }),
        fc.integer({ min: 0, max: 20_000 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 0, max: 100_000 }),
        fc.integer({ min: 0, max: 5_000 }),
        fc.integer({ min: 0, max: 500 }),
        (bs, isl, overlapFrac, activePrefill, activeBlocks, newBlocks) => {
          const overlap = Math.floor(Math.floor(isl / bs) * overlapFrac);
          const c = load({ deviceOverlapBlocks: overlap, activePrefillTokens: activePrefill, activeBlocks, newBlocks });
          const request = { isl, blockSize: bs, trackPrefillTokens: true, minActivePrefillTokens: 0 };
          expect(computeCost(request, c, DEFAULT_COST_PARAMS).cost).toBeCloseTo(classicCost(request, c, 1), 6);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("credits host and disk tiers with their weights and never goes below zero prefill", () => {
    const request = { isl: 1024, blockSize: 64, trackPrefillTokens: true, minActivePrefillTokens: 0 };
    const b = computeCost(
      request,
      load({ deviceOverlapBlocks: 4, hostOverlapBlocks: 4, diskOverlapBlocks: 4 }),
      DEFAULT_COST_PARAMS,
    );
    expect(b.overlapCredit).toBe(4 + 0.75 * 4 + 0.25 * 4);
    expect(b.prefillBlocks).toBe(16 - 8);
    const capped = computeCost(request, load({ deviceOverlapBlocks: 16, hostOverlapBlocks: 16 }), DEFAULT_COST_PARAMS);
    expect(capped.prefillBlocks).toBe(0);
  });

  it("applies prefill load scale, credit decay, active-request weight and the no-prefill-tracking mode", () => {
    const request = { isl: 640, blockSize: 64, trackPrefillTokens: true, minActivePrefillTokens: 0 };
    const c = load({ deviceOverlapBlocks: 4, activePrefillTokens: 640, activeBlocks: 7, activeRequests: 3 });
    const params = {
      ...DEFAULT_COST_PARAMS,
      prefillLoadScale: 2,
      decodeActiveRequestWeight: 1.5,
      overlapScoreCreditDecay: 1,
    };
    // excess = ((640 − 0) / 64) / 10 blocks = 1 → credit halved: 4 · 0.5 = 2; raw = 20 blocks.
    const b = computeCost(request, c, params);
    expect(b.overlapCredit).toBe(2);
    expect(b.cost).toBe(2 * 18 + 7 + 1.5 * 3);
    const off = computeCost({ ...request, trackPrefillTokens: false }, c, DEFAULT_COST_PARAMS);
    expect(off.rawPrefillBlocks).toBe(0);
    expect(off.cost).toBe(7 - 4); // decode-only case: credit offsets decode blocks
    expect(
      computeCost({ ...request, trackPrefillTokens: false }, c, { ...DEFAULT_COST_PARAMS, overlapScoreCredit: 0 }).cost,
    ).toBe(7);
    // The decode side of a disaggregated request (credit 0, no prefill tracking): host and disk hits earn nothing.
    const tiered = load({ deviceOverlapBlocks: 4, hostOverlapBlocks: 3, diskOverlapBlocks: 2, activeBlocks: 7 });
    expect(
      computeCost({ ...request, trackPrefillTokens: false }, tiered, { ...DEFAULT_COST_PARAMS, overlapScoreCredit: 0 })
        .cost,
    ).toBe(7);
    expect(computeCost({ ...request, trackPrefillTokens: false }, tiered, DEFAULT_COST_PARAMS).cost).toBe(
      7 - (4 + 0.75 * 3 + 0.25 * 2),
    );
  });
});

describe("selection", () => {
  it("breaks ties uniformly at random and reproducibly with a seeded rng", () => {
    const counts = [0, 0, 0, 0];
    const rng = seededRng(42);
    for (let i = 0; i < 3000; i++) counts[selectByCost([3, 1, 1, 1], 0, rng).index]!++;
    expect(counts[0]).toBe(0);
    for (const c of counts.slice(1)) expect(c / 3000).toBeGreaterThan(0.28);
    const a = Array.from({ length: 20 }, (_, i) => selectByCost([1, 1, 1], 0, seededRng(i)).index);
    const b = Array.from({ length: 20 }, (_, i) => selectByCost([1, 1, 1], 0, seededRng(i)).index);
    expect(a).toEqual(b);
    expect(selectByCost([5, 1, 1], 0, seededRng(3)).ties).toBe(2);
  });

  it("samples the softmax distribution at temperature > 0", () => {
    const rng = seededRng(9);
    const counts = [0, 0, 0];
    const n = 20_000;
    for (let i = 0; i < n; i++) counts[selectByCost([364, 378, 392], 0.5, rng).index]!++;
    [0.6652, 0.2447, 0.09].forEach((p, i) => expect(Math.abs(counts[i]! / n - p)).toBeLessThan(0.02));
    expect(softmaxProbabilities([4, 4], 1)).toEqual([0.5, 0.5]);
    expect(() => selectByCost([], 0, rng)).toThrow(RangeError);
  });
});
