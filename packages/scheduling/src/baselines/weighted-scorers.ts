import type { EndpointSignals, PolicyRequest, ScoredCandidate, WeightedScorer } from "../types.js";
import { LOAD_AWARE_THRESHOLD, kvUtilizationScore, loadAwareScore, precisePrefixScore, queueScores } from "./scores.js";

/** The baseline scorers over candidates, reading scraped metrics from `signals` (formulas in `scores.ts`). */

/** GAIE `queue-scorer` on the scraped waiting queues. */
export function queueScorer(signals: EndpointSignals, weight: number): WeightedScorer {
  let waiting = new Float64Array(0);
  return {
    name: "queue-scorer",
    weight,
    scores(_request, candidates, out) {
      if (waiting.length < candidates.length) waiting = new Float64Array(candidates.length);
      const q = waiting.subarray(0, candidates.length);
      candidates.forEach((c, i) => (q[i] = signals.metrics(c.rank.key)?.waiting ?? 0));
      queueScores(q, out);
    },
  };
}

/** GAIE `kv-cache-utilization-scorer` on the scraped KV usage. */
export function kvUtilizationScorer(signals: EndpointSignals, weight: number): WeightedScorer {
  return {
    name: "kv-cache-utilization-scorer",
    weight,
    scores(_request, candidates, out) {
      candidates.forEach((c, i) => (out[i] = kvUtilizationScore(signals.metrics(c.rank.key)?.kvUsage ?? 0)));
    },
  };
}

/** llm-d `load-aware-scorer` on the scraped waiting queues. */
export function loadAwareScorer(
  signals: EndpointSignals,
  weight: number,
  threshold = LOAD_AWARE_THRESHOLD,
): WeightedScorer {
  return {
    name: "load-aware-scorer",
    weight,
    scores(_request, candidates, out) {
      candidates.forEach((c, i) => (out[i] = loadAwareScore(signals.metrics(c.rank.key)?.waiting ?? 0, threshold)));
    },
  };
}

/**
 * llm-d `precise-prefix-cache-scorer` on the router's event-fed index: each candidate's consecutive
 * device-tier prefix (`overlapBlocks`) over the request's full blocks (`floor(isl / blockSize)`).
 */
export function precisePrefixScorer(blockSize: number, weight: number): WeightedScorer {
  return {
    name: "precise-prefix-cache-scorer",
    weight,
    scores(request: PolicyRequest, candidates: readonly ScoredCandidate[], out: Float64Array) {
      const total = Math.floor(request.isl / blockSize);
      candidates.forEach((c, i) => (out[i] = precisePrefixScore(c.overlapBlocks, total)));
    },
  };
}
