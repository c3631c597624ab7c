import { workerRankKey } from "@dynamo/kv-indexer";
import { ActiveSequences, type RankHandle, type RankLoad, type SequenceChange } from "./active-sequences.js";
import { anyThresholdEnabled, busyWorkers, rankBusyReason, type BusyThresholds } from "./busy.js";
import { DEFAULT_COST_PARAMS, computeCost, type CostBreakdown, type CostInputs, type CostParams, type CostRequest } from "./cost.js";
import { KvCostPolicy, type RankInfo, type RoutingPolicy, type ScoredCandidate } from "./policy.js";
import type { Rng } from "./rng.js";

/** A worker joining a pool: ranks `[dpStart, dpStart + dpSize)`. */
export interface WorkerSpec {
  readonly workerId: bigint;
  readonly dpSize?: number;
  readonly dpStart?: number;
  readonly kvTotalBlocks?: number;
  readonly maxNumBatchedTokens?: number;
}

export interface WorkerPoolOptions {
  readonly blockSize: number;
  readonly cost?: Partial<CostParams>;
  readonly temperature?: number;
  readonly busy?: BusyThresholds;
  readonly policy?: RoutingPolicy;
  /** Count decode-side blocks of active requests (default true; false for a prefill pool). */
  readonly trackActiveBlocks?: boolean;
  /** Count prompt tokens still in prefill (default true). */
  readonly trackPrefillTokens?: boolean;
  /** Deduplicate active prompt blocks by sequence hash (default true). */
  readonly assumeKvReuse?: boolean;
  readonly trackOutputBlocks?: boolean;
  readonly activeSequenceStride?: number;
  readonly activeRequestExpirySecs?: number;
  readonly rng?: Rng;
  /** Clock in milliseconds. */
  readonly now?: () => number;
  readonly onError?: (message: string) => void;
  /** Told which booked requests went stale and were freed. */
  readonly onExpire?: (requestIds: readonly string[]) => void;
  /** Told about every bookkeeping change (replica sync). */
  readonly onChange?: (change: SequenceChange) => void;
}

/** Per-request changes to the pool's settings (e.g. the decode side of a disaggregated request). */
export interface RequestOverrides {
  readonly overlapScoreCredit?: number;
  readonly prefillLoadScale?: number;
  readonly temperature?: number;
  readonly trackPrefillTokens?: boolean;
  readonly assumeKvReuse?: boolean;
}

/** Prefix depth per worker rank key, one map per storage tier (absent = no overlap). */
export interface TierOverlaps {
  readonly device?: ReadonlyMap<string, number>;
  readonly host?: ReadonlyMap<string, number>;
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
}

export interface Rejected extends EvaluationBase {
  readonly kind: "rejected";
  readonly reason: RejectReason;
  readonly message: string;
}

export type Evaluation = Chosen | Rejected;

const NO_WORKERS: ReadonlySet<bigint> = new Set();

interface CostContext {
  readonly request: CostRequest;
  readonly params: CostParams;
}

/** A scored rank (also the cost function's input); load snapshot and breakdown are built when read. */
class Candidate implements ScoredCandidate, CostInputs {
  cost = 0;

  constructor(
    readonly rank: RankInfo,
    readonly deviceOverlapBlocks: number,
    readonly hostOverlapBlocks: number,
    readonly diskOverlapBlocks: number,
    readonly activePrefillTokens: number,
    readonly activeBlocks: number,
    readonly newBlocks: number,
    readonly activeRequests: number,
    readonly busyReason: string | null,
    private readonly context: CostContext,
  ) {}

  get overlapBlocks(): number {
    return this.deviceOverlapBlocks;
  }

  get load(): RankLoad {
    return { activePrefillTokens: this.activePrefillTokens, activeBlocks: this.activeBlocks, activeRequests: this.activeRequests };
  }

  get breakdown(): CostBreakdown {
    return computeCost(this.context.request, this, this.context.params);
  }
}

/**
 * A set of worker ranks with their in-flight load, scored by the cost function and chosen by a policy.
 * `evaluate` reads state only; `book` records a choice. Callers that need atomic select-and-book call
 * both in one synchronous step.
 */
export class WorkerPool {
  readonly blockSize: number;
  readonly sequences: ActiveSequences;
  readonly policy: RoutingPolicy;
  readonly cost: CostParams;
  readonly temperature: number;
  readonly busy: BusyThresholds;
  private readonly tracking: { activeBlocks: boolean; prefillTokens: boolean; kvReuse: boolean };
  private readonly rng: Rng;
  private readonly workers = new Map<bigint, RankInfo[]>();
  private readonly handles = new Map<RankInfo, RankHandle>();
  private rankList: RankInfo[] = [];

  constructor(options: WorkerPoolOptions) {
    this.blockSize = options.blockSize;
    this.cost = { ...DEFAULT_COST_PARAMS, ...options.cost };
    this.temperature = options.temperature ?? 0;
    this.busy = options.busy ?? {};
    this.policy = options.policy ?? new KvCostPolicy();
    this.rng = options.rng ?? Math.random;
    this.tracking = {
      activeBlocks: options.trackActiveBlocks ?? true,
      prefillTokens: options.trackPrefillTokens ?? true,
      kvReuse: options.assumeKvReuse ?? true,
    };
    this.sequences = new ActiveSequences({
      blockSize: options.blockSize,
      stride: options.activeSequenceStride,
      trackOutputBlocks: (options.trackOutputBlocks ?? false) && this.tracking.activeBlocks,
      expirySecs: options.activeRequestExpirySecs,
      now: options.now,
      onError: options.onError,
      onExpire: options.onExpire,
      onChange: options.onChange,
    });
  }

  /** Registers (or re-registers with new capacity figures) a worker and its DP ranks. */
  addWorker(spec: WorkerSpec): void {
    const dpSize = Math.max(1, spec.dpSize ?? 1);
    const dpStart = spec.dpStart ?? 0;
    const ranks: RankInfo[] = [];
    for (let r = dpStart; r < dpStart + dpSize; r++) {
      const key = workerRankKey(spec.workerId, r);
      ranks.push({ workerId: spec.workerId, dpRank: r, key, kvTotalBlocks: spec.kvTotalBlocks, maxNumBatchedTokens: spec.maxNumBatchedTokens });
    }
    const previous = this.workers.get(spec.workerId) ?? [];
    for (const old of previous) {
      this.handles.delete(old);
      if (!ranks.some((r) => r.key === old.key)) this.sequences.removeRank(old.key);
    }
    for (const r of ranks) {
      this.sequences.addRank(r.key);
      this.handles.set(r, this.sequences.rankHandle(r.key)!);
    }
    this.workers.set(spec.workerId, ranks);
    this.rankList = [...this.workers.values()].flat();
  }

  /** Removes a worker; returns the ids of the requests that were booked on it (now freed). */
  removeWorker(workerId: bigint): string[] {
    const ranks = this.workers.get(workerId);
    if (!ranks) return [];
    this.workers.delete(workerId);
    for (const r of ranks) this.handles.delete(r);
    this.rankList = [...this.workers.values()].flat();
    return ranks.flatMap((r) => this.sequences.removeRank(r.key));
  }

  hasWorker(workerId: bigint): boolean {
    return this.workers.has(workerId);
  }

  get workerCount(): number {
    return this.workers.size;
  }

  /** Every registered rank, in registration order. */
  ranks(): readonly RankInfo[] {
    return this.rankList;
  }

  /** Scores the candidates and lets the policy choose. Does not book. */
  evaluate(request: PoolRequest): Evaluation {
    const o = request.overrides ?? {};
    const ranks = this.filterRanks(request);
    if (ranks.length === 0) {
      const pinned = request.pinned !== undefined;
      return this.reject(pinned ? "pinned_unavailable" : "no_candidates", pinned ? "pinned worker rank is not available" : "no eligible worker", [], new Set());
    }
    const cost: CostParams = {
      ...this.cost,
      ...(o.overlapScoreCredit !== undefined && { overlapScoreCredit: o.overlapScoreCredit }),
      ...(o.prefillLoadScale !== undefined && { prefillLoadScale: o.prefillLoadScale }),
    };
    const trackPrefill = o.trackPrefillTokens ?? this.tracking.prefillTokens;
    const kvReuse = o.assumeKvReuse ?? this.tracking.kvReuse;
    const checkBusy = anyThresholdEnabled(this.busy);
    const fullBlocks = request.sequenceHashes.length;
    const keys = this.tracking.activeBlocks && kvReuse ? this.sequences.trackingKeys(request.sequenceHashes) : undefined;

    const n = ranks.length;
    const handles: Array<RankHandle | undefined> = new Array(n);
    const prefillTokens = new Float64Array(n);
    const activeBlocks = new Float64Array(n);
    const activeRequests = new Float64Array(n);
    const busyReasons: Array<string | null> = new Array(n).fill(null);
    for (let i = 0; i < n; i++) {
      const r = ranks[i]!;
      const handle = this.handles.get(r);
      handles[i] = handle;
      if (!handle) continue;
      prefillTokens[i] = this.sequences.activePrefillTokensOf(handle);
      activeBlocks[i] = this.sequences.activeBlocksOf(handle);
      activeRequests[i] = this.sequences.activeRequestsOf(handle);
      if (checkBusy) {
        busyReasons[i] = rankBusyReason({ activeBlocks: activeBlocks[i]!, activePrefillTokens: prefillTokens[i]!, kvTotalBlocks: r.kvTotalBlocks, maxNumBatchedTokens: r.maxNumBatchedTokens }, this.busy);
      }
    }
    const excluded = checkBusy ? busyWorkers(ranks.map((r, i) => ({ workerId: r.workerId, busy: busyReasons[i] !== null }))) : NO_WORKERS;
    let minPrefill = Infinity;
    const anyExcluded = excluded.size > 0;
    for (let i = 0; i < n; i++) if (!anyExcluded || !excluded.has(ranks[i]!.workerId)) minPrefill = Math.min(minPrefill, prefillTokens[i]!);

    const context: CostContext = {
      request: { isl: request.isl, blockSize: this.blockSize, trackPrefillTokens: trackPrefill, minActivePrefillTokens: Number.isFinite(minPrefill) ? minPrefill : 0 },
      params: cost,
    };
    const device = request.overlaps?.device;
    const hostTier = request.overlaps?.host;
    const diskTier = request.overlaps?.disk;
    const candidates: ScoredCandidate[] = new Array(n);
    const eligible: ScoredCandidate[] = [];
    for (let i = 0; i < n; i++) {
      const r = ranks[i]!;
      const handle = handles[i];
      const deviceDepth = device?.get(r.key) ?? 0;
      const hostDepth = hostTier?.get(r.key) ?? 0;
      const diskDepth = diskTier?.get(r.key) ?? 0;
      const c = new Candidate(
        r,
        deviceDepth,
        Math.max(0, hostDepth - deviceDepth),
        Math.max(0, diskDepth - Math.max(deviceDepth, hostDepth)),
        prefillTokens[i]!,
        activeBlocks[i]!,
        keys ? (handle ? this.sequences.newBlocksOf(handle, keys) : keys.keys.length * this.sequences.stride) : this.tracking.activeBlocks ? fullBlocks : 0,
        activeRequests[i]!,
        busyReasons[i]!,
        context,
      );
      c.cost = computeCost(context.request, c, cost).cost;
      candidates[i] = c;
      if (!anyExcluded || !excluded.has(r.workerId)) eligible.push(c);
    }
    if (eligible.length === 0) {
      const pinned = request.pinned !== undefined;
      return this.reject(pinned ? "pinned_overloaded" : "overloaded", pinned ? "pinned worker is busy" : "all eligible workers are busy", candidates, excluded);
    }
    if (request.pinned?.dpRank !== undefined) return { kind: "chosen", chosen: eligible[0]!, reason: "pinned", candidates, busyWorkers: excluded };
    const choice = this.policy.choose({ isl: request.isl, temperature: o.temperature ?? this.temperature }, eligible, { rng: this.rng });
    const chosen = eligible[choice.index]!;
    return { kind: "chosen", chosen, reason: request.pinned ? `pinned worker; ${choice.reason}` : choice.reason, candidates, busyWorkers: excluded };
  }

  private reject(reason: RejectReason, message: string, candidates: ScoredCandidate[], excluded: ReadonlySet<bigint>): Rejected {
    return { kind: "rejected", reason, message, candidates, busyWorkers: excluded };
  }

  private filterRanks(request: PoolRequest): readonly RankInfo[] {
    const pin = request.pinned;
    if (pin) {
      if (request.allowedWorkers && !request.allowedWorkers.has(pin.workerId)) return [];
      const ranks = this.workers.get(pin.workerId) ?? [];
      return pin.dpRank === undefined ? ranks : ranks.filter((r) => r.dpRank === pin.dpRank);
    }
    const allowed = request.allowedWorkers;
    return allowed ? this.rankList.filter((r) => allowed.has(r.workerId)) : this.rankList;
  }

  /**
   * Books the chosen candidate for `requestId`, with the same overrides used to evaluate it.
   * Returns false when the id is already booked or the rank is gone.
   */
  book(requestId: string, chosen: ScoredCandidate, request: PoolRequest): boolean {
    const o = request.overrides ?? {};
    const trackPrefill = o.trackPrefillTokens ?? this.tracking.prefillTokens;
    const kvReuse = o.assumeKvReuse ?? this.tracking.kvReuse;
    const blocks = this.tracking.activeBlocks;
    return this.sequences.addRequest(requestId, chosen.rank.key, {
      sequenceHashes: blocks && kvReuse ? request.sequenceHashes : null,
      privateBlocks: blocks && !kvReuse ? request.sequenceHashes.length : 0,
      isl: request.isl,
      prefillTokens: trackPrefill ? Math.max(0, request.isl - chosen.overlapBlocks * this.blockSize) : 0,
      expectedOutputTokens: request.expectedOutputTokens,
    });
  }
}
