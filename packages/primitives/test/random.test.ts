import { describe, expect, it } from "vitest";
import { seededRng } from "../src/index.js";

describe("seededRng", () => {
  it("repeats its stream for a seed, differs across seeds, and stays in [0, 1)", () => {
    const a = Array.from({ length: 1000 }, seededRng(42));
    expect(Array.from({ length: 1000 }, seededRng(42))).toEqual(a);
    expect(Array.from({ length: 10 }, seededRng(43))).not.toEqual(a.slice(0, 10));
    expect(a.every((x) => x >= 0 && x < 1)).toBe(true);
    const mean = a.reduce((s, x) => s + x, 0) / a.length;
    expect(mean).toBeGreaterThan(0.45);
    expect(mean).toBeLessThan(0.55);
    // mulberry32's first output for seed 1.
    expect(seededRng(1)()).toBeCloseTo(0.6270739405881613, 12);
  });
});
