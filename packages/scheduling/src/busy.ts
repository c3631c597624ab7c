/**
 * Busy thresholds: a worker rank over any enabled threshold is "busy"; a worker is excluded from
 * selection when every one of its ranks is busy, and a rank over `DYN_BUSY_THRESHOLD` is skipped on its
 * own. Pure functions over load snapshots.
 */

/** All thresholds are off when absent (or, for `busyThreshold`, negative). */
export interface BusyThresholds {
  /**
   * `DYN_BUSY_THRESHOLD`: upper bound on the KV-cache fill fraction, `activeBlocks / kvTotalBlocks`
   * (0–1). Negative or absent = off. Ranks whose capacity is unknown are never busy by this test.
   */
  readonly busyThreshold?: number;
  /** `DYN_ACTIVE_DECODE_BLOCKS_THRESHOLD`: same quantity and rule as `busyThreshold`, fraction 0–1. */
  readonly activeDecodeBlocksThreshold?: number;
  /** `DYN_ACTIVE_PREFILL_TOKENS_THRESHOLD`: absolute prompt tokens still in prefill. */
  readonly activePrefillTokensThreshold?: number;
  /** `DYN_ACTIVE_PREFILL_TOKENS_THRESHOLD_FRAC`: prefill tokens as a fraction of `maxNumBatchedTokens`. */
  readonly activePrefillTokensThresholdFrac?: number;
}

/** The load figures the thresholds look at. */
export interface BusyInputs {
  readonly activeBlocks: number;
  readonly activePrefillTokens: number;
  readonly kvTotalBlocks?: number;
  readonly maxNumBatchedTokens?: number;
}

function enabled(value: number | undefined): value is number {
  return value !== undefined && value >= 0;
}

/** The rank's KV fill fraction, or undefined when its capacity is unknown. */
function kvFill(load: BusyInputs): number | undefined {
  const capacity = load.kvTotalBlocks;
  return capacity !== undefined && capacity > 0 ? load.activeBlocks / capacity : undefined;
}

/** Why a rank is busy (first threshold exceeded), or null when it is not. */
export function rankBusyReason(load: BusyInputs, t: BusyThresholds): string | null {
  const fill = kvFill(load);
  if (fill !== undefined) {
    for (const [name, limit] of [
      ["busy threshold", t.busyThreshold],
      ["active decode blocks threshold", t.activeDecodeBlocksThreshold],
    ] as const) {
      if (enabled(limit) && fill > limit) {
        return `${name}: KV fill ${fill.toFixed(3)} (${load.activeBlocks}/${load.kvTotalBlocks} blocks) > ${limit}`;
      }
    }
  }
  if (enabled(t.activePrefillTokensThreshold) && load.activePrefillTokens > t.activePrefillTokensThreshold) {
    return `active prefill tokens ${load.activePrefillTokens} > ${t.activePrefillTokensThreshold}`;
  }
  const batch = load.maxNumBatchedTokens;
  if (enabled(t.activePrefillTokensThresholdFrac) && batch !== undefined && batch > 0) {
    const limit = t.activePrefillTokensThresholdFrac * batch;
    if (load.activePrefillTokens > limit) {
      return `active prefill tokens ${load.activePrefillTokens} > ${t.activePrefillTokensThresholdFrac} × ${batch} batched tokens`;
    }
  }
  return null;
}

/**
 * True when the rank is over `DYN_BUSY_THRESHOLD`: such a rank is skipped for the next best candidate
 * even when its worker has other ranks free (the other thresholds exclude only fully busy workers).
 */
export function overBusyThreshold(load: BusyInputs, t: BusyThresholds): boolean {
  const fill = kvFill(load);
  return enabled(t.busyThreshold) && fill !== undefined && fill > t.busyThreshold;
}

/** True when at least one threshold is enabled (lets callers skip the per-rank checks). */
export function anyThresholdEnabled(t: BusyThresholds): boolean {
  return (
    enabled(t.busyThreshold) ||
    enabled(t.activeDecodeBlocksThreshold) ||
    enabled(t.activePrefillTokensThreshold) ||
    enabled(t.activePrefillTokensThresholdFrac)
  );
}

/**
 * Workers to exclude: those whose every rank is busy. `rankBusy` lists each candidate rank's worker id
 * and busy flag (a worker's ranks may appear in any order).
 */
export function busyWorkers(
  rankBusy: ReadonlyArray<{ readonly workerId: bigint; readonly busy: boolean }>,
): Set<bigint> {
  const anyFree = new Set<bigint>();
  const seen = new Set<bigint>();
  for (const r of rankBusy) {
    seen.add(r.workerId);
    if (!r.busy) anyFree.add(r.workerId);
  }
  const out = new Set<bigint>();
  for (const id of seen) if (!anyFree.has(id)) out.add(id);
  return out;
}
