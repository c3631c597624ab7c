import type { EndpointSignals, Picker } from "../types.js";
import { MaxScorePicker } from "./max-score-picker.js";
import { LOAD_AWARE_THRESHOLD } from "./scores.js";
import { loadAwareScorer, precisePrefixScorer } from "./weighted-scorers.js";

/** Weights of llm-d's KV-cache + load-aware configuration: precise prefix 2, load-aware 1. */
export const LLMD_PRECISE_WEIGHTS = { precisePrefix: 2, loadAware: 1 } as const;

/**
 * llm-d's precise prefix-cache routing: `precise-prefix-cache-scorer` (fed by KV events) weight 2 plus
 * `load-aware-scorer` weight 1 on the scraped waiting queue, max-score picker.
 */
export function llmdPrecisePicker(
  signals: EndpointSignals,
  blockSize: number,
  threshold = LOAD_AWARE_THRESHOLD,
): Picker {
  const w = LLMD_PRECISE_WEIGHTS;
  return new MaxScorePicker("llm-d-precise", [
    precisePrefixScorer(blockSize, w.precisePrefix),
    loadAwareScorer(signals, w.loadAware, threshold),
  ]);
}
