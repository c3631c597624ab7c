import type { WorkerPool } from "./pool.js";
import type { Chosen, Evaluation, PoolRequest, RejectReason, RequestOverrides } from "./types.js";

/**
 * Settings forced on the decode side of a disaggregated request: the KV cache arrives from the prefill
 * worker, so prefix credit, KV reuse and prompt-side load do not apply to the decode worker.
 */
export const DISAGG_DECODE_OVERRIDES: RequestOverrides = Object.freeze({
  overlapScoreCredit: 0,
  assumeKvReuse: false,
  trackPrefillTokens: false,
});

export interface DisaggPlannerOptions {
  /** Prefill workers; build it with `trackActiveBlocks: false` (they hold no decode state). */
  readonly prefill: WorkerPool;
  readonly decode: WorkerPool;
  /** Fail with `prefill_unavailable` instead of falling back to aggregated serving. */
  readonly enforceDisagg?: boolean;
}

export interface PlanRequest extends PoolRequest {
  /** Pins the prefill side (the decode side is pinned by `pinned`). */
  readonly pinnedPrefill?: { readonly workerId: bigint; readonly dpRank?: number };
}

export interface DisaggregatedPlan {
  readonly kind: "disaggregated";
  readonly prefill: Chosen;
  readonly decode: Chosen;
}

export interface AggregatedPlan {
  readonly kind: "aggregated";
  readonly decode: Chosen;
  /** True when prefill workers exist (or existed) but none could take the request. */
  readonly fallback: boolean;
  /** The failed prefill evaluation, when one was attempted. */
  readonly prefill?: Evaluation;
}

export interface RejectedPlan {
  readonly kind: "rejected";
  readonly reason: RejectReason | "prefill_unavailable" | "duplicate_request";
  readonly message: string;
  readonly prefill?: Evaluation;
  readonly decode?: Evaluation;
}

export type Plan = DisaggregatedPlan | AggregatedPlan | RejectedPlan;

/**
 * Plans a request over a prefill pool and a decode pool: prefill first by KV-aware scoring, then decode
 * with the disaggregation overrides; aggregated fallback (full KV scoring on the decode pool) when no
 * prefill worker is available, unless disaggregation is enforced. Booking is all-or-nothing.
 */
export class DisaggPlanner {
  readonly prefill: WorkerPool;
  readonly decode: WorkerPool;
  readonly enforceDisagg: boolean;
  private prefillSeen = false;

  constructor(options: DisaggPlannerOptions) {
    this.prefill = options.prefill;
    this.decode = options.decode;
    this.enforceDisagg = options.enforceDisagg ?? false;
  }

  /** Evaluates both sides without booking. */
  plan(request: PlanRequest): Plan {
    const hasPrefill = this.prefill.workerCount > 0;
    this.prefillSeen ||= hasPrefill;
    let prefillEval: Evaluation | undefined;
    if (hasPrefill) {
      prefillEval = this.prefill.evaluate({ ...request, pinned: request.pinnedPrefill });
      if (prefillEval.kind === "chosen") {
        const decode = this.decode.evaluate({
          ...request,
          overrides: { ...request.overrides, ...DISAGG_DECODE_OVERRIDES },
        });
        if (decode.kind !== "chosen")
          return {
            kind: "rejected",
            reason: decode.reason,
            message: `decode: ${decode.message}`,
            prefill: prefillEval,
            decode,
          };
        return { kind: "disaggregated", prefill: prefillEval, decode };
      }
    }
    if (this.enforceDisagg) {
      const why = prefillEval?.kind === "rejected" ? prefillEval.message : "no prefill worker registered";
      return {
        kind: "rejected",
        reason: "prefill_unavailable",
        message: `prefill unavailable: ${why}`,
        prefill: prefillEval,
      };
    }
    const decode = this.decode.evaluate(request);
    if (decode.kind !== "chosen")
      return { kind: "rejected", reason: decode.reason, message: decode.message, prefill: prefillEval, decode };
    return { kind: "aggregated", decode, fallback: this.prefillSeen, prefill: prefillEval };
  }

  /**
   * Books a plan under `requestId` on both sides, or on neither. Returns false (nothing booked) when the
   * plan was rejected or the id is already booked.
   */
  book(requestId: string, plan: Plan, request: PlanRequest): boolean {
    if (plan.kind === "rejected") return false;
    if (plan.kind === "aggregated") return this.decode.book(requestId, plan.decode.chosen, request);
    if (this.prefill.sequences.has(requestId) || this.decode.sequences.has(requestId)) return false;
    if (!this.prefill.book(requestId, plan.prefill.chosen, { ...request, pinned: request.pinnedPrefill })) return false;
    if (
      !this.decode.book(requestId, plan.decode.chosen, {
        ...request,
        overrides: { ...request.overrides, ...DISAGG_DECODE_OVERRIDES },
      })
    ) {
      this.prefill.sequences.free(requestId);
      return false;
    }
    return true;
  }

  /** Plans and books in one synchronous step; a plan that cannot be booked comes back rejected. */
  planAndBook(requestId: string, request: PlanRequest): Plan {
    const plan = this.plan(request);
    if (plan.kind === "rejected" || this.book(requestId, plan, request)) return plan;
    return { kind: "rejected", reason: "duplicate_request", message: `request id ${requestId} is already booked` };
  }
}
