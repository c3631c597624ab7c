import { anyThresholdEnabled, busyWorkers, overBusyThreshold, rankBusyReason, type BusyThresholds } from "./busy.js";
import { BLOCKS, PREFILL } from "./score-table.js";
import type { CandidateTable, Filter } from "./types.js";

/**
 * Busy thresholds as a filter: a rank over any threshold is busy (its reason is recorded); a worker whose
 * every rank is busy is dropped, and so is a single rank over `DYN_BUSY_THRESHOLD`.
 */
export class BusyFilter implements Filter {
  readonly name = "busy-thresholds";
  private readonly enabled: boolean;

  constructor(readonly thresholds: BusyThresholds) {
    this.enabled = anyThresholdEnabled(thresholds);
  }

  filter(table: CandidateTable, eligible: readonly number[]): readonly number[] {
    if (!this.enabled) return eligible;
    const reasons = new Array<string | null>(table.ranks.length).fill(null);
    const skipped = new Array<boolean>(table.ranks.length).fill(false);
    for (const i of eligible) {
      const rank = table.ranks[i]!;
      const load = {
        activeBlocks: table.get(BLOCKS, i),
        activePrefillTokens: table.get(PREFILL, i),
        kvTotalBlocks: rank.kvTotalBlocks,
        maxNumBatchedTokens: rank.maxNumBatchedTokens,
      };
      reasons[i] = rankBusyReason(load, this.thresholds);
      skipped[i] = overBusyThreshold(load, this.thresholds);
    }
    const excluded = busyWorkers(
      eligible.map((i) => ({ workerId: table.ranks[i]!.workerId, busy: reasons[i] !== null })),
    );
    table.busyReasons = reasons;
    table.busyWorkers = excluded;
    return eligible.filter((i) => !skipped[i] && !(excluded.size > 0 && excluded.has(table.ranks[i]!.workerId)));
  }
}
