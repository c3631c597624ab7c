import type { DisaggPlanner, LoadDelta, Plan } from "@dynamo/scheduling";
import type { ActiveSequenceEvent } from "./types.js";

/**
 * Decision audits for replica sync: two replicas deciding at the same instant do not see each other's
 * booking. An audit keeps what one decision weighed so that, once the peers' bookings made concurrently
 * with it arrive, the replica can ask whether it would have chosen differently had it known them.
 */

/** A booked decision, kept for re-scoring against bookings it did not know of. */
export interface DecisionAudit {
  /**
   * Whether the choice would differ had the ranks carried `deltas` more load: some other eligible rank
   * would then cost strictly less than the chosen one, in either pool.
   */
  wouldChange(deltas: PoolLoadDeltas): boolean;
}

/** Load that bookings added, for each pool by rank (`workerRankKey`). */
export interface PoolLoadDeltas {
  readonly decode: ReadonlyMap<string, LoadDelta>;
  readonly prefill: ReadonlyMap<string, LoadDelta>;
}

/** The load one booking change added to one rank (`rank` is its `workerRankKey`) of one pool. */
export interface RankLoadDelta {
  readonly pool: ActiveSequenceEvent["pool"];
  readonly rank: string;
  readonly delta: LoadDelta;
}

/** The audit of a routed plan (aggregated: the decode choice; disaggregated: both choices). */
export function auditOf(plan: Exclude<Plan, { kind: "rejected" }>, planner: DisaggPlanner): DecisionAudit {
  return {
    wouldChange(deltas) {
      if (deltas.decode.size > 0 && planner.decode.rescore(plan.decode, deltas.decode).changed) return true;
      return (
        plan.kind === "disaggregated" &&
        deltas.prefill.size > 0 &&
        planner.prefill.rescore(plan.prefill, deltas.prefill).changed
      );
    },
  };
}
