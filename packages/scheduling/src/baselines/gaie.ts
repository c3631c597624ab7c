import type { EndpointSignals, Picker, ScoredCandidate, WeightedScorer } from "../types.js";
import type { ApproxPrefixIndex, PrefixMatch } from "./approx-prefix.js";
import { MaxScorePicker } from "./max-score-picker.js";
import { prefixMatchScore } from "./scores.js";
import { kvUtilizationScorer, queueScorer } from "./weighted-scorers.js";

/**
 * GAIE's approximate prefix producer around an `ApproxPrefixIndex`: `prepare` computes the next
 * request's hashes and per-endpoint matches (PrepareData), the `prefix-cache-scorer` reads them, and
 * `learn` adds the hashes to the chosen endpoint (PreRequest, optimistic).
 */
export class ApproxPrefixProducer {
  private hashes: bigint[] = [];
  private current: PrefixMatch = { matched: new Map(), total: 0 };

  constructor(readonly index: ApproxPrefixIndex) {}

  /** Hashes and matches the next request's input bytes (the plain prompt, or the JSON of the messages). */
  prepare(input: Uint8Array, model: string, salt = ""): PrefixMatch {
    this.hashes = this.index.hashes(input, model, salt);
    this.current = this.index.match(this.hashes);
    return this.current;
  }

  /** The prepared request's match. */
  get match(): PrefixMatch {
    return this.current;
  }

  /** `prefix-cache-scorer`: matched / total blocks of the prepared request. */
  scorer(weight: number): WeightedScorer {
    return {
      name: "prefix-cache-scorer",
      weight,
      scores: (_request, candidates, out) => {
        const { matched, total } = this.current;
        candidates.forEach((c, i) => (out[i] = prefixMatchScore(matched.get(c.rank.key) ?? 0, total)));
      },
    };
  }

  /** Optimistic learning: the prepared request's hashes join the chosen endpoint's LRU. */
  learn(chosen: ScoredCandidate): void {
    this.index.learn(chosen.rank.key, this.hashes);
  }
}

/** GAIE's default weights: queue 2, KV utilisation 2, prefix 3. */
export const GAIE_DEFAULT_WEIGHTS = { queue: 2, kvUtilization: 2, prefix: 3 } as const;

/** GAIE's built-in profile: queue, KV-utilisation and approximate prefix scorers, max-score picker. */
export function gaieDefaultPicker(signals: EndpointSignals, producer: ApproxPrefixProducer): Picker {
  const w = GAIE_DEFAULT_WEIGHTS;
  return new MaxScorePicker(
    "gaie-default",
    [queueScorer(signals, w.queue), kvUtilizationScorer(signals, w.kvUtilization), producer.scorer(w.prefix)],
    (chosen) => producer.learn(chosen),
  );
}
