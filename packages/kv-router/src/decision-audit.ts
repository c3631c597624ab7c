import { workerRankKey, type WorkerRank } from "@dynamo/kv-indexer";
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
   * Whether the choice would differ had the ranks carried `deltas` more load (keys from `auditKey`):
   * some other eligible rank would then cost strictly less than the chosen one, in either pool.
   */
  wouldChange(deltas: ReadonlyMap<string, LoadDelta>): boolean;
}

/** The key of one rank of one pool in an audit's load deltas. */
export function auditKey(pool: ActiveSequenceEvent["pool"], worker: WorkerRank): string {
  return `${pool}/${workerRankKey(worker.workerId, worker.dpRank)}`;
}

/** The audit of a routed plan (aggregated: the decode choice; disaggregated: both choices). */
export function auditOf(plan: Exclude<Plan, { kind: "rejected" }>, planner: DisaggPlanner): DecisionAudit {
  return {
    wouldChange(deltas) {
      const byPool = { decode: new Map<string, LoadDelta>(), prefill: new Map<string, LoadDelta>() };
      for (const [key, delta] of deltas) {
        const slash = key.indexOf("/");
        const pool = key.slice(0, slash);
        if (pool === "decode" || pool === "prefill") byPool[pool].set(key.slice(slash + 1), delta);
      }
      if (byPool.decode.size > 0 && planner.decode.rescore(plan.decode, byPool.decode).changed) return true;
      return (
        plan.kind === "disaggregated" &&
        byPool.prefill.size > 0 &&
        planner.prefill.rescore(plan.prefill, byPool.prefill).changed
      );
    },
  };
}
