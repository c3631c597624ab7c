import type { TimingModel } from "./types.js";

/**
 * Prefill time (ms) of Dynamo's mocker polynomial model: `T` = prompt tokens computed in the step, over
 * the whole batch (prompt tokens served from the cache are not computed). 0 when nothing is new.
 */
export function polynomialPrefillMs(newTokens: number): number {
  if (newTokens <= 0) return 0;
  return 4.209989e-7 * newTokens * newTokens + 1.518344e-2 * newTokens + 16.50142;
}

/** Decode step time (ms) at KV-cache fill `p` (active blocks / capacity), floored at 1 ms. */
export function polynomialDecodeMs(activeFraction: number): number {
  const p = activeFraction;
  return Math.max(1, -25.74 * p * p + 54.01 * p + 5.74);
}

/** The current constants of Dynamo's mocker (`perf_model.rs`). */
export const POLYNOMIAL_TIMING: TimingModel = { prefillMs: polynomialPrefillMs, decodeMs: polynomialDecodeMs };

/** What one scheduling step computes, for its duration. */
export interface StepWork {
  /** Prompt tokens computed in the step, over every request still prefilling. */
  readonly prefillTokens: number;
  /** At least one request produces a decode token. */
  readonly decoding: boolean;
  /** Active blocks / capacity after the step's allocations. */
  readonly activeFraction: number;
  /** Adapters loaded for the step. */
  readonly loraLoads: number;
}

export interface StepTimingConfig {
  readonly timing: TimingModel;
  readonly speedupRatio: number;
  readonly decodeSpeedupRatio: number;
  readonly loraLoadTimeMs: number;
}

/**
 * Duration of one step: prefill of the batch's new prompt tokens, plus one decode pass when any request
 * decodes, plus adapter loads; everything divided by `speedupRatio` (0: no delay at all), decode also by
 * `decodeSpeedupRatio`.
 */
export function stepDurationMs(work: StepWork, config: StepTimingConfig): number {
  if (config.speedupRatio === 0) return 0;
  let ms = config.timing.prefillMs(work.prefillTokens) + work.loraLoads * config.loraLoadTimeMs;
  if (work.decoding) ms += config.timing.decodeMs(work.activeFraction) / config.decodeSpeedupRatio;
  return ms / config.speedupRatio;
}

/**
 * KV-transfer delay (ms) of a prefill → decode handoff: `tokens × kvBytesPerToken / bandwidth`, the
 * bandwidth in GB/s (10⁹ bytes), divided by `speedupRatio` (0: none).
 */
export function kvTransferMs(
  tokens: number,
  kvBytesPerToken: number,
  bandwidthGBps: number,
  speedupRatio: number,
): number {
  if (speedupRatio === 0) return 0;
  return (tokens * kvBytesPerToken) / (bandwidthGBps * 1e6) / speedupRatio;
}
