import type { Rng } from "@dynamo/primitives";

/** How a selection was made, for the explain record. */
export interface Selection {
  readonly index: number;
  /** Number of candidates tied at the minimum (temperature 0), 1 when unique. */
  readonly ties: number;
  /** Selection probability of the chosen index under softmax (temperature > 0). */
  readonly probability?: number;
}

/**
 * Softmax over min-max normalised costs: `p_i ∝ exp(−(c_i − lo) / ((hi − lo) · T))`; uniform when all
 * costs are equal. `temperature` must be > 0.
 */
export function softmaxProbabilities(costs: ArrayLike<number>, temperature: number): number[] {
  const n = costs.length;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < n; i++) {
    lo = Math.min(lo, costs[i]!);
    hi = Math.max(hi, costs[i]!);
  }
  if (!(hi > lo)) return Array.from({ length: n }, () => 1 / n);
  const scale = (hi - lo) * temperature;
  const weights = Array.from({ length: n }, (_, i) => Math.exp(-(costs[i]! - lo) / scale));
  const total = weights.reduce((a, b) => a + b, 0);
  return weights.map((w) => w / total);
}

/**
 * Picks a candidate by cost. Temperature 0: the minimum, ties broken uniformly at random (reservoir
 * sampling); with a `tieBand` > 0 every cost within the band of the minimum counts as tied. Temperature > 0:
 * one draw from the softmax distribution. `costs` must be non-empty.
 */
export function selectByCost(costs: ArrayLike<number>, temperature: number, rng: Rng, tieBand = 0): Selection {
  if (costs.length === 0) throw new RangeError("selectByCost needs at least one candidate");
  if (temperature > 0) {
    const p = softmaxProbabilities(costs, temperature);
    const draw = rng();
    let cumulative = 0;
    for (let i = 0; i < p.length - 1; i++) {
      cumulative += p[i]!;
      if (draw < cumulative) return { index: i, ties: 1, probability: p[i]! };
    }
    return { index: p.length - 1, ties: 1, probability: p[p.length - 1]! };
  }
  if (tieBand > 0) {
    let min = Infinity;
    for (let i = 0; i < costs.length; i++) min = Math.min(min, costs[i]!);
    let chosen = 0;
    let within = 0;
    for (let i = 0; i < costs.length; i++) {
      if (costs[i]! > min + tieBand) continue;
      within++;
      if (rng() * within < 1) chosen = i;
    }
    return { index: chosen, ties: within };
  }
  let best = 0;
  let ties = 1;
  for (let i = 1; i < costs.length; i++) {
    const c = costs[i]!;
    if (c < costs[best]!) {
      best = i;
      ties = 1;
    } else if (c === costs[best]!) {
      ties++;
      if (rng() * ties < 1) best = i;
    }
  }
  return { index: best, ties };
}
