import type { EventGap, WorkerRank } from "@dynamo/kv-indexer";
import type { RejectReason, Rng, Picker } from "@dynamo/scheduling";
import type { KvRouterSettings } from "./config.js";
import type { DecisionAudit } from "./decision-audit.js";

/** A bookkeeping change exchanged between router replicas (Dynamo's `ActiveSequenceEvent`). */
export interface ActiveSequenceEvent {
  readonly requestId: string;
  readonly worker: WorkerRank;
  /** Which of the router's pools the booking lives in. */
  readonly pool: "decode" | "prefill";
  /** Id of the sending router; receivers drop their own events. */
  readonly routerId: bigint;
  readonly data:
    | {
        readonly type: "add_request";
        /** Sequence hashes of the prompt's full blocks (null: blocks counted without deduplication). */
        readonly tokenSequence: BigUint64Array | null;
        readonly privateBlocks: number;
        readonly isl: number;
        /** Uncached prompt tokens booked as prefill backlog (`initial_effective_prefill_tokens`). */
        readonly prefillTokens: number;
        readonly expectedOutputTokens?: number;
      }
    | { readonly type: "mark_prefill_completed" }
    /** Output grew past a block boundary (an extension of Dynamo's event: peers count output growth too). */
    | { readonly type: "output"; readonly generatedTokens: number }
    | { readonly type: "free" };
}

/** Runtime hooks that are not configuration values. */
export interface KvRouterHooks {
  /** Uniform [0, 1) source for tie-breaks and sampling (default `Math.random`). */
  readonly rng?: Rng;
  /** Clock in milliseconds (default `Date.now`), for request expiry and approximate-mode TTLs. */
  readonly now?: () => number;
  /**
   * The picker instead of the one `mode` names: another registered name (`registerPicker` of
   * `@dynamo/scheduling`), or a factory (each pool gets its own instance).
   */
  readonly picker?: string | (() => Picker);
  readonly onWarning?: (message: string) => void;
  /** Index apply errors and bookkeeping problems; never thrown. */
  readonly onError?: (message: string) => void;
  readonly onGap?: (gap: EventGap) => void;
  /** With `replicaSync`: every local booking change, to publish to the other replicas. */
  readonly onActiveSequenceEvent?: (event: ActiveSequenceEvent) => void;
  /**
   * With `replicaSync`: every `replicaAuditEvery`-th booked decision, right after its booking was published,
   * kept for re-scoring once peers' concurrent bookings arrive (`ReplicaSync.audit`).
   */
  readonly onDecisionAudit?: (audit: DecisionAudit) => void;
}

export type KvRouterOptions = Partial<KvRouterSettings> & KvRouterHooks;

export type WorkerRole = "prefill" | "decode" | "both";

export interface WorkerRegistration {
  readonly workerId: bigint;
  readonly dpSize?: number;
  readonly dpStart?: number;
  /** `decode` (default) serves whole requests or the decode phase; `prefill` only prefills; `both` joins both pools. */
  readonly role?: WorkerRole;
  readonly kvTotalBlocks?: number;
  readonly maxNumBatchedTokens?: number;
}

export interface RouteRequest {
  /** Prompt token ids (hashed here), or … */
  readonly tokens?: ArrayLike<number>;
  /** … precomputed local block hashes of the prompt's full blocks (salts already applied). */
  readonly localHashes?: BigUint64Array;
  /** Prompt length in tokens; defaults to `tokens.length`, or `localHashes.length × blockSize`. */
  readonly isl?: number;
  readonly loraName?: string;
  readonly cacheSalt?: string;
  /** Only these workers may be chosen (e.g. the EPP subset hint). */
  readonly allowedWorkers?: Iterable<bigint>;
  /** Route to this worker (rank) without scoring; still validated against busy thresholds. */
  readonly pinned?: { readonly workerId: bigint; readonly dpRank?: number };
  readonly pinnedPrefill?: { readonly workerId: bigint; readonly dpRank?: number };
  /** Carried into the decision; orders the router queue (higher first) when it is on. */
  readonly priority?: number;
  /** Expected output length (`osl` hint): decays the request's blocks when output tracking is on. */
  readonly expectedOutputTokens?: number;
  /** Booking id; generated when absent. A duplicate id is rejected. */
  readonly requestId?: string;
  /** Session id (`X-Dynamo-Session-ID`): with session affinity on, the session sticks to its decode worker. */
  readonly sessionId?: string;
  /** Evaluate only: nothing is booked or recorded. */
  readonly queryOnly?: boolean;
  /** Per-request overrides (`router_config_override`); `overlapScoreWeight` follows the deprecated rule. */
  readonly overrides?: {
    readonly overlapScoreCredit?: number;
    readonly prefillLoadScale?: number;
    readonly overlapScoreWeight?: number;
    readonly temperature?: number;
  };
}

/** One candidate rank in the explain record. */
export interface CandidateExplain {
  readonly workerId: bigint;
  readonly dpRank: number;
  readonly overlapBlocks: number;
  readonly hostOverlapBlocks: number;
  readonly diskOverlapBlocks: number;
  /** Prompt blocks left after overlap credit (adjusted prefill, before `prefillLoadScale`). */
  readonly prefillBlocks: number;
  readonly decodeBlocks: number;
  readonly activeRequests: number;
  readonly cost: number;
  /** Rank over a busy threshold (it is excluded only when all its worker's ranks are). */
  readonly busy: boolean;
  readonly chosen: boolean;
  readonly reason: string;
}

export interface RouteExplain {
  readonly policy: string;
  readonly decode: readonly CandidateExplain[];
  readonly prefill?: readonly CandidateExplain[];
}

export interface RouteDecision {
  readonly kind: "routed";
  readonly bookingId: string;
  readonly mode: "aggregated" | "disaggregated";
  /** Aggregated because prefill workers exist but none could take the request. */
  readonly fallback: boolean;
  readonly worker: WorkerRank;
  readonly prefillWorker?: WorkerRank;
  /** Device-tier prefix overlap on the worker that runs the prefill. */
  readonly overlapBlocks: number;
  readonly cachedTokens: number;
  readonly requiredBlocks: number;
  readonly isl: number;
  readonly priority?: number;
  /** False for query-only routes. */
  readonly booked: boolean;
  readonly explain: RouteExplain;
}

export type RouteRejectReason =
  | RejectReason
  | "prefill_unavailable"
  | "duplicate_request"
  | "not_ready"
  | "invalid_request"
  /** The router queue is full, or the request waited in it past `DYN_ROUTER_QUEUE_TIMEOUT_SECS`. */
  | "queue_overloaded";

export interface RouteRejection {
  readonly kind: "rejected";
  readonly reason: RouteRejectReason;
  readonly message: string;
  readonly explain?: RouteExplain;
}

export type RouteResult = RouteDecision | RouteRejection;

export interface KvRouterCounters {
  routes: number;
  aggregated: number;
  disaggregated: number;
  /** Aggregated routes taken because no prefill worker was available. */
  fallbacks: number;
  overloaded: number;
  rejected: number;
  eventsApplied: number;
  /** Events not indexed: no index in this mode, or an unindexed storage tier. */
  eventsIgnored: number;
  /** Bookings freed because their worker was removed or they went stale. */
  bookingsDropped: number;
  /** Requests that waited in the router queue. */
  queued: number;
  /** Requests refused because the router queue was full. */
  queueFull: number;
  /** Queued requests that failed at the queue deadline. */
  queueTimeouts: number;
}
