import { percentile, round } from "../framework.js";
import type { ReplayResult } from "./replay.js";

/** The figures of one policy at one load. */
export interface PolicyMetrics {
  readonly policy: string;
  /** Arrival speedup of the run. */
  readonly load: number;
  readonly requests: number;
  readonly ttftMeanMs: number;
  readonly ttftP50Ms: number;
  readonly ttftP90Ms: number;
  readonly ttftP99Ms: number;
  /** Mean inter-token latency over every gap of every request (TPOT). */
  readonly itlMeanMs: number;
  /** p50 / p99 of per-request mean inter-token latency. */
  readonly tpotP50Ms: number;
  readonly tpotP99Ms: number;
  readonly e2eMeanMs: number;
  readonly e2eP99Ms: number;
  readonly outputTokPerSec: number;
  readonly requestsPerSec: number;
  /** Σ cached prompt tokens / Σ prompt tokens. */
  readonly reuseRatio: number;
  /** Mean over samples of max / mean in-flight requests per worker (1 = perfectly even). */
  readonly loadImbalance: number;
  readonly decisionP50Us: number | null;
  readonly decisionP99Us: number | null;
  /** Wall-clock seconds the replay took. */
  readonly wallSeconds: number;
}

const sorted = (a: Float64Array) => Float64Array.from(a.filter((v) => !Number.isNaN(v))).sort();
const sum = (a: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return s;
};

/** Max over mean of per-worker in-flight requests, averaged over samples where anything is in flight. */
export function loadImbalance(inflight: readonly number[][]): number {
  const workers = inflight.length;
  if (workers < 2) return 1;
  let total = 0;
  let count = 0;
  for (let s = 0; s < (inflight[0]?.length ?? 0); s++) {
    let max = 0;
    let all = 0;
    for (let w = 0; w < workers; w++) {
      const v = inflight[w]![s]!;
      max = Math.max(max, v);
      all += v;
    }
    if (all > 0) {
      total += max / (all / workers);
      count++;
    }
  }
  return count > 0 ? total / count : 1;
}

export function summarise(r: ReplayResult, load: number): PolicyMetrics {
  const ttft = sorted(r.ttftMs);
  const tpot = sorted(r.itlMs);
  const e2e = sorted(r.e2eMs);
  const decisions = Float64Array.from(r.decisionMs).sort();
  let gaps = 0;
  let gapMs = 0;
  for (let i = 0; i < r.requests; i++) {
    if (Number.isNaN(r.itlMs[i]!)) continue;
    gaps += r.outputTokens[i]! - 1;
    gapMs += r.itlMs[i]! * (r.outputTokens[i]! - 1);
  }
  const seconds = (r.lastEndMs - r.firstArrivalMs) / 1000;
  const mean = (a: Float64Array) => (a.length ? sum(a) / a.length : NaN);
  return {
    policy: r.policy,
    load,
    requests: r.requests,
    ttftMeanMs: round(mean(ttft), 1),
    ttftP50Ms: round(percentile(ttft, 50), 1),
    ttftP90Ms: round(percentile(ttft, 90), 1),
    ttftP99Ms: round(percentile(ttft, 99), 1),
    itlMeanMs: round(gaps ? gapMs / gaps : NaN, 2),
    tpotP50Ms: round(percentile(tpot, 50), 2),
    tpotP99Ms: round(percentile(tpot, 99), 2),
    e2eMeanMs: round(mean(e2e), 1),
    e2eP99Ms: round(percentile(e2e, 99), 1),
    outputTokPerSec: round(sum(r.outputTokens) / seconds, 1),
    requestsPerSec: round(r.requests / seconds, 3),
    reuseRatio: round(sum(r.cachedTokens) / sum(r.promptTokens), 4),
    loadImbalance: round(loadImbalance(r.samples.inflight), 3),
    decisionP50Us: decisions.length ? round(percentile(decisions, 50) * 1000, 1) : null,
    decisionP99Us: decisions.length ? round(percentile(decisions, 99) * 1000, 1) : null,
    wallSeconds: round(r.wallMs / 1000, 2),
  };
}
