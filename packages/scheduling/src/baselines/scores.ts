/**
 * The per-endpoint scores of the baseline scorers of GAIE's endpoint picker and llm-d's scheduler, as
 * pure functions. Every score lies in [0, 1], higher is better; a scored policy picks the maximum of
 * `Σ weight × score`.
 */

/** `queue-scorer`: `(maxQ − q) / (maxQ − minQ)` over the candidates' waiting queues; 1.0 when all are equal. */
export function queueScores(
  waiting: ArrayLike<number>,
  out: Float64Array = new Float64Array(waiting.length),
): Float64Array {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < waiting.length; i++) {
    min = Math.min(min, waiting[i]!);
    max = Math.max(max, waiting[i]!);
  }
  for (let i = 0; i < waiting.length; i++) out[i] = max > min ? (max - waiting[i]!) / (max - min) : 1;
  return out;
}

/** `kv-cache-utilization-scorer`: `1 − kv_cache_usage` (usage a fraction 0–1). */
export function kvUtilizationScore(kvUsage: number): number {
  return clamp01(1 - kvUsage);
}

/** Approximate `prefix-cache-scorer`: `matchedBlocks / totalBlocks`, 0 without blocks. */
export function prefixMatchScore(matchedBlocks: number, totalBlocks: number): number {
  return totalBlocks > 0 ? clamp01(matchedBlocks / totalBlocks) : 0;
}

/** Default queue threshold of llm-d's `load-aware-scorer`. */
export const LOAD_AWARE_THRESHOLD = 128;

/**
 * llm-d's `load-aware-scorer`: 0.5 for an empty queue, else `0.5 × (1 − min(q, threshold) / threshold)`
 * (a queue at the threshold scores 0, an idle endpoint never more than 0.5).
 */
export function loadAwareScore(waiting: number, threshold = LOAD_AWARE_THRESHOLD): number {
  if (waiting <= 0) return 0.5;
  return 0.5 * (1 - Math.min(waiting, threshold) / threshold);
}

/** Tier weights of llm-d's `LongestPrefix` scoring. */
export const PRECISE_TIER_WEIGHTS = { gpu: 1.0, cpu: 0.8 } as const;

/**
 * llm-d's `precise-prefix-cache-scorer`: the tier-weighted consecutive prefix hits from block 0 over the
 * request's block count, capped at 1 (`gpuBlocks` device hits, then `cpuBlocks` host hits continuing them).
 */
export function precisePrefixScore(gpuBlocks: number, totalBlocks: number, cpuBlocks = 0): number {
  if (totalBlocks <= 0) return 0;
  const raw = PRECISE_TIER_WEIGHTS.gpu * gpuBlocks + PRECISE_TIER_WEIGHTS.cpu * cpuBlocks;
  return clamp01(raw / totalBlocks);
}

function clamp01(v: number): number {
  return v <= 0 ? 0 : v >= 1 ? 1 : v;
}
