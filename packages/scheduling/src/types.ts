import type { Rng } from "@dynamo/primitives";
import type { CostBreakdown, CostParams, CostRequest } from "./cost.js";
import type { RankLoad } from "./sequences/active-sequences.js";

/**
 * The contracts of scheduling: candidates and their scores, and the three kinds of step an evaluation
 * runs (GAIE's EPP): a `Filter` narrows the candidates, a `Scorer` gives each a cost, a `Picker` chooses.
 */

/** A worker joining a pool: ranks `[dpStart, dpStart + dpSize)`. */
export interface WorkerSpec {
  readonly workerId: bigint;
  readonly dpSize?: number;
  readonly dpStart?: number;
  readonly kvTotalBlocks?: number;
  readonly maxNumBatchedTokens?: number;
}

/** Per-request changes to the pool's settings (e.g. the decode side of a disaggregated request). */
export interface RequestOverrides {
  readonly overlapScoreCredit?: number;
  readonly prefillLoadScale?: number;
  readonly temperature?: number;
  readonly trackPrefillTokens?: boolean;
  readonly assumeKvReuse?: boolean;
}

/**
 * Cached blocks of the prompt per worker rank key (absent = none). Lower tiers continue the match
 * before them: `host` counts the host-tier blocks right after the device prefix, `disk` the disk-tier
 * blocks right after the device prefix and its host continuation.
 */
export interface TierOverlaps {
  /** Device-tier prefix depth. */
  readonly device?: ReadonlyMap<string, number>;
  /** Host-tier blocks continuing the device prefix. */
  readonly host?: ReadonlyMap<string, number>;
  /** Disk-tier blocks continuing the device + host prefix. */
  readonly disk?: ReadonlyMap<string, number>;
}

export interface PoolRequest {
  readonly isl: number;
  /** Chained sequence hashes of the prompt's full blocks. */
  readonly sequenceHashes: BigUint64Array;
  readonly overlaps?: TierOverlaps;
  /** Only these workers may be chosen (absent = all). */
  readonly allowedWorkers?: ReadonlySet<bigint>;
  /** Skip scoring: this worker (and rank, when given) or nothing. */
  readonly pinned?: { readonly workerId: bigint; readonly dpRank?: number };
  readonly expectedOutputTokens?: number;
  readonly overrides?: RequestOverrides;
  /** Cost added to every rank of these workers (e.g. a LoRA adapter they must load first), in cost units (blocks). */
  readonly extraCost?: ReadonlyMap<bigint, number>;
}

export type RejectReason = "no_candidates" | "overloaded" | "pinned_unavailable" | "pinned_overloaded";

interface EvaluationBase {
  /** Every candidate considered (after the allowed-set / pin filter), busy ones included. */
  readonly candidates: readonly ScoredCandidate[];
  /** Workers excluded because all their ranks are busy. */
  readonly busyWorkers: ReadonlySet<bigint>;
}

export interface Chosen extends EvaluationBase {
  readonly kind: "chosen";
  readonly chosen: ScoredCandidate;
  readonly reason: string;
  /** The request named its worker (`pinned`): the choice was not the picker's to make among all workers. */
  readonly pinned: boolean;
}

export interface Rejected extends EvaluationBase {
  readonly kind: "rejected";
  readonly reason: RejectReason;
  readonly message: string;
}

export type Evaluation = Chosen | Rejected;

/** One data-parallel rank of a worker, as a routing candidate. */
export interface RankInfo {
  readonly workerId: bigint;
  readonly dpRank: number;
  /** `workerRankKey(workerId, dpRank)`. */
  readonly key: string;
  /** KV capacity of the rank in blocks, when known (busy thresholds on KV fill need it). */
  readonly kvTotalBlocks?: number;
  /** The engine's `max_num_batched_tokens`, when known (fractional prefill threshold needs it). */
  readonly maxNumBatchedTokens?: number;
}

/** A candidate with everything computed about it for one request. */
export interface ScoredCandidate {
  readonly rank: RankInfo;
  /** Device-tier prefix overlap in blocks (reported even when the request's overlap credit is 0). */
  readonly overlapBlocks: number;
  readonly hostOverlapBlocks: number;
  readonly diskOverlapBlocks: number;
  readonly load: RankLoad;
  readonly newBlocks: number;
  /** The cost the policy compares (lower is better). */
  readonly cost: number;
  /** How the cost was made up. */
  readonly breakdown: CostBreakdown;
  /** Why this rank is over a busy threshold, or null. */
  readonly busyReason: string | null;
  /** Not eligible: every rank of its worker is busy, or the rank is over `DYN_BUSY_THRESHOLD`. */
  readonly excluded: boolean;
}

/** Request-level facts a policy may use. */
export interface PolicyRequest {
  readonly isl: number;
  /** Softmax temperature for cost-based policies (0 = deterministic minimum). */
  readonly temperature: number;
  /** With temperature 0: costs within this much of the minimum count as tied (0: exact ties only). */
  readonly tieBand?: number;
}

/** Mutable context a policy may draw on. */
export interface PolicyState {
  readonly rng: Rng;
}

export interface PolicyChoice {
  /** Index into the candidates passed to `choose`. */
  readonly index: number;
  /** Human-readable reason, shown in the explain record. */
  readonly reason: string;
}

/**
 * Chooses one of the (non-empty, already filtered and scored) candidates (GAIE's Picker). Implementations
 * may keep their own state (e.g. a round-robin cursor) but must not touch load bookkeeping.
 */
export interface Picker {
  readonly name: string;
  choose(request: PolicyRequest, candidates: readonly ScoredCandidate[], state: PolicyState): PolicyChoice;
  /**
   * Optional fast path for policies that need only the candidates' costs (same order as `choose`'s
   * candidates); when present the pool calls it instead of `choose` and builds no candidate objects.
   */
  chooseByCost?(request: PolicyRequest, costs: ArrayLike<number>, state: PolicyState): PolicyChoice;
}

/**
 * One evaluation's candidates as the steps see them: every number column-wise (`score-table.ts` names
 * the columns), candidate objects on demand, and what the filters found.
 */
export interface CandidateTable {
  readonly ranks: readonly RankInfo[];
  get(column: number, i: number): number;
  set(column: number, i: number, value: number): void;
  candidate(i: number): ScoredCandidate;
  /** Why each rank is over a busy threshold (null: it is not); null while no filter looked. */
  busyReasons: ReadonlyArray<string | null> | null;
  /** Workers excluded because every one of their ranks is busy. */
  busyWorkers: ReadonlySet<bigint>;
  /** Request-level inputs of the cost (isl, block size, tracking, credit-decay baseline) and its parameters. */
  readonly context: { readonly request: CostRequest; readonly params: CostParams };
}

/**
 * Narrows the candidates of an evaluation (GAIE's Filter): returns the indices of `eligible` it keeps
 * (possibly `eligible` itself), and may record in the table why it dropped the others.
 */
export interface Filter {
  readonly name: string;
  filter(table: CandidateTable, eligible: readonly number[]): readonly number[];
}

/** Gives candidate `i` its cost, lower is better (GAIE's Scorer, inverted: costs, not scores). */
export interface Scorer {
  readonly name: string;
  score(table: CandidateTable, i: number): number;
}

/** Load signals of one endpoint as a scraper of its `/metrics` sees them (possibly stale). */
export interface EndpointMetrics {
  /** `vllm:num_requests_waiting`. */
  readonly waiting: number;
  /** `vllm:kv_cache_usage_perc`, a fraction 0–1. */
  readonly kvUsage: number;
}

/** Where scored baselines read endpoint metrics (GAIE and llm-d scrape them every 50 ms). */
export interface EndpointSignals {
  /** The last scraped metrics of a rank; undefined (never scraped) scores as idle. */
  metrics(rankKey: string): EndpointMetrics | undefined;
}

/**
 * One weighted scorer of a max-score policy (GAIE's Scorer): writes each candidate's score, in [0, 1]
 * and higher is better, into `out` (at least as long as `candidates`).
 */
export interface WeightedScorer {
  readonly name: string;
  readonly weight: number;
  scores(request: PolicyRequest, candidates: readonly ScoredCandidate[], out: Float64Array): void;
}

export type { Rng };
