import type { Picker, PolicyChoice, PolicyRequest, PolicyState, ScoredCandidate, WeightedScorer } from "../types.js";

/**
 * GAIE's `max-score-picker` over weighted scorers: `total = Σ weight × score` per candidate (each score
 * clamped to [0, 1] by its scorer), the maximum wins, ties broken uniformly at random (GAIE shuffles
 * before a stable sort, which is the same distribution). Optional `afterPick` hears every choice (a
 * producer's optimistic learning, GAIE's PreRequest step).
 */
export class MaxScorePicker implements Picker {
  private totals = new Float64Array(0);
  private scratch = new Float64Array(0);

  constructor(
    readonly name: string,
    private readonly scorers: readonly WeightedScorer[],
    private readonly afterPick?: (chosen: ScoredCandidate) => void,
  ) {}

  choose(request: PolicyRequest, candidates: readonly ScoredCandidate[], state: PolicyState): PolicyChoice {
    const n = candidates.length;
    if (this.totals.length < n) {
      this.totals = new Float64Array(n);
      this.scratch = new Float64Array(n);
    }
    const totals = this.totals.subarray(0, n).fill(0);
    const scores = this.scratch.subarray(0, n);
    for (const s of this.scorers) {
      s.scores(request, candidates, scores);
      for (let i = 0; i < n; i++) totals[i]! += s.weight * scores[i]!;
    }
    let best = 0;
    let ties = 1;
    for (let i = 1; i < n; i++) {
      if (totals[i]! > totals[best]!) {
        best = i;
        ties = 1;
      } else if (totals[i] === totals[best] && state.rng() * ++ties < 1) {
        best = i;
      }
    }
    this.afterPick?.(candidates[best]!);
    const total = +totals[best]!.toFixed(4);
    return {
      index: best,
      reason:
        ties > 1
          ? `highest score ${total}, tied with ${ties - 1} other(s), picked at random`
          : `highest score ${total}`,
    };
  }
}
