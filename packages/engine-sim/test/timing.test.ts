import { describe, expect, it } from "vitest";
import {
  POLYNOMIAL_TIMING,
  kvTransferMs,
  polynomialDecodeMs,
  polynomialPrefillMs,
  stepDurationMs,
} from "../src/index.js";

const base = { timing: POLYNOMIAL_TIMING, speedupRatio: 1, decodeSpeedupRatio: 1, loraLoadTimeMs: 25 };

describe("polynomial timing model", () => {
  it("reproduces the worked prefill examples", () => {
    expect(polynomialPrefillMs(512)).toBeCloseTo(24.386, 3);
    expect(polynomialPrefillMs(4096)).toBeCloseTo(85.756, 3);
    expect(polynomialPrefillMs(8192)).toBeCloseTo(169.137, 3);
    expect(polynomialPrefillMs(0)).toBe(0);
  });

  it("reproduces the worked decode examples, floored at 1 ms", () => {
    expect(polynomialDecodeMs(0)).toBeCloseTo(5.74, 2);
    expect(polynomialDecodeMs(0.5)).toBeCloseTo(26.31, 2);
    expect(polynomialDecodeMs(0.9)).toBeCloseTo(33.5, 2);
    expect(polynomialDecodeMs(1)).toBeCloseTo(34.01, 2);
    expect(polynomialDecodeMs(3)).toBe(1);
  });

  it("adds prefill, one decode pass and adapter loads, divided by the speedup ratios", () => {
    const work = { prefillTokens: 512, decoding: true, activeFraction: 0.5, loraLoads: 1 };
    expect(stepDurationMs(work, base)).toBeCloseTo(24.386 + 26.31 + 25, 2);
    expect(stepDurationMs(work, { ...base, speedupRatio: 2 })).toBeCloseTo((24.386 + 26.31 + 25) / 2, 2);
    expect(stepDurationMs(work, { ...base, decodeSpeedupRatio: 2 })).toBeCloseTo(24.386 + 26.31 / 2 + 25, 2);
    expect(stepDurationMs(work, { ...base, speedupRatio: 0 })).toBe(0);
    expect(stepDurationMs({ ...work, prefillTokens: 0, loraLoads: 0 }, base)).toBeCloseTo(26.31, 2);
  });

  it("prices a KV transfer by bytes over bandwidth", () => {
    // 1000 tokens × 131 072 B at 64 GB/s = 2.048 ms
    expect(kvTransferMs(1000, 131_072, 64, 1)).toBeCloseTo(2.048, 6);
    expect(kvTransferMs(1000, 131_072, 64, 4)).toBeCloseTo(0.512, 6);
    expect(kvTransferMs(1000, 131_072, 64, 0)).toBe(0);
  });
});
