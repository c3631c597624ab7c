import type { PolicyMetrics } from "./metrics.js";

/** The targets checked at the load where round-robin's TTFT p50 first exceeds 1 s. */
export interface Verdict {
  /** That load (the highest swept when round-robin never crosses 1 s). */
  readonly load: number;
  /** Round-robin's TTFT p50 crossed 1 s at some swept load. */
  readonly crossed: boolean;
  /** ours TTFT p50 / round-robin's (target ≤ 1/3). */
  readonly oursVsRoundRobinTtftP50: number | null;
  /** ours prefix reuse / the pooled bound's (target ≥ 0.9). */
  readonly oursReuseVsUpperBound: number | null;
  /** Per baseline: does ours beat it on TTFT p50, TTFT p99 and output tokens/s? */
  readonly beats: Record<string, { ttftP50: boolean; ttftP99: boolean; outputTokPerSec: boolean }>;
  readonly targets: Record<string, boolean>;
}

export const TTFT_TARGET_RATIO = 1 / 3;
export const REUSE_TARGET_RATIO = 0.9;

export function verdict(results: readonly PolicyMetrics[], loads: readonly number[]): Verdict {
  const at = (policy: string, load: number) => results.find((r) => r.policy === policy && r.load === load);
  const crossedAt = loads.find((l) => (at("round-robin", l)?.ttftP50Ms ?? 0) > 1000);
  const load = crossedAt ?? loads[loads.length - 1]!;
  const ours = at("ours", load);
  const rr = at("round-robin", load);
  const pooled = at("pooled", load);
  const ratio = (a: number | undefined, b: number | undefined) =>
    a !== undefined && b !== undefined && b > 0 ? Math.round((a / b) * 1000) / 1000 : null;
  const beats: Verdict["beats"] = {};
  for (const name of ["gaie-default", "llm-d-precise", "round-robin", "dynamo-classic"]) {
    const other = at(name, load);
    if (!ours || !other) continue;
    beats[name] = {
      ttftP50: ours.ttftP50Ms < other.ttftP50Ms,
      ttftP99: ours.ttftP99Ms < other.ttftP99Ms,
      outputTokPerSec: ours.outputTokPerSec > other.outputTokPerSec,
    };
  }
  const oursVsRoundRobinTtftP50 = ratio(ours?.ttftP50Ms, rr?.ttftP50Ms);
  const oursReuseVsUpperBound = ratio(ours?.reuseRatio, pooled?.reuseRatio);
  const all = (b: Verdict["beats"][string] | undefined) =>
    b !== undefined && b.ttftP50 && b.ttftP99 && b.outputTokPerSec;
  return {
    load,
    crossed: crossedAt !== undefined,
    oursVsRoundRobinTtftP50,
    oursReuseVsUpperBound,
    beats,
    targets: {
      ttftP50AtMostThirdOfRoundRobin: oursVsRoundRobinTtftP50 !== null && oursVsRoundRobinTtftP50 <= TTFT_TARGET_RATIO,
      beatsGaieDefault: all(beats["gaie-default"]),
      beatsLlmdPrecise: all(beats["llm-d-precise"]),
      reuseAtLeast90PercentOfUpperBound: oursReuseVsUpperBound !== null && oursReuseVsUpperBound >= REUSE_TARGET_RATIO,
    },
  };
}
