import { workerRankKey } from "@dynamo/kv-indexer";
import {
  ActiveSequences,
  type RankHandle,
  type RankLoad,
  type SequenceChange,
  type TrackingKeys,
} from "./active-sequences.js";
import { anyThresholdEnabled, busyWorkers, overBusyThreshold, rankBusyReason, type BusyThresholds } from "./busy.js";
import {
  DEFAULT_COST_PARAMS,
  computeCost,
  costInto,
  type CostBreakdown,
  type CostInputs,
  type CostParams,
  type CostRequest,
} from "./cost.js";
import { KvCostPolicy, type PolicyChoice, type RankInfo, type RoutingPolicy, type ScoredCandidate } from "./policy.js";
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
/** Breakdown written and discarded while scoring (only the cost is kept per candidate). */
const scratchBreakdown = { rawPrefillBlocks: 0, overlapCredit: 0, prefillBlocks: 0, decodeBlocks: 0, cost: 0 };

interface CostContext {
  readonly request: CostRequest;
  readonly params: CostParams;
}

// Column layout of a ScoreTable: one array holds every per-rank number of one evaluation.
const DEVICE = 0;
const HOST = 1;
const DISK = 2;
const PREFILL = 3;
const BLOCKS = 4;
const REQUESTS = 5;
const NEW = 6;
const COST = 7;
const COLUMNS = 8;

/** Everything computed for one evaluation, column-wise; candidate objects are made only when asked for. */
class ScoreTable {
  /** Off the JavaScript heap: with a thousand ranks the table is too large to churn through the young generation. */
  readonly values: Float64Array;
  /** Ranks that may not be chosen (busy worker, or over `DYN_BUSY_THRESHOLD`); null when none are. */
  excluded: boolean[] | null = null;
  private readonly made: Array<Candidate | undefined>;

  /** Set once the eligible set (and so the credit-decay baseline) is known, before any candidate exists. */
  context: CostContext = {
    request: { isl: 0, blockSize: 1, trackPrefillTokens: true, minActivePrefillTokens: 0 },
    params: DEFAULT_COST_PARAMS,
  };

  constructor(
    readonly ranks: readonly RankInfo[],
    readonly busyReasons: ReadonlyArray<string | null> | null,
    /** The request's tracking keys, as made by `keysFrom` (reused when the choice is booked there). */
    readonly trackingKeys: TrackingKeys | undefined,
    readonly keysFrom: ActiveSequences,
  ) {
    this.values = new Float64Array(ranks.length * COLUMNS);
    this.made = new Array(ranks.length);
  }

  get(column: number, i: number): number {
    return this.values[column * this.ranks.length + i]!;
  }

  set(column: number, i: number, value: number): void {
    this.values[column * this.ranks.length + i] = value;
  }

  /** One column, every rank in order (a view, not a copy). */
  column(column: number): Float64Array {
    const n = this.ranks.length;
    return this.values.subarray(column * n, (column + 1) * n);
  }

  candidate(i: number): Candidate {
    return (this.made[i] ??= new Candidate(this, i));
  }

  all(): Candidate[] {
    return this.ranks.map((_, i) => this.candidate(i));
  }
}

/** A scored rank backed by its table row (also the cost function's input, for the breakdown). */
class Candidate implements ScoredCandidate, CostInputs {
  constructor(
    readonly table: ScoreTable,
    private readonly i: number,
  ) {}

  get rank(): RankInfo {
    return this.table.ranks[this.i]!;
  }
  get overlapBlocks(): number {
    return this.table.get(DEVICE, this.i);
  }
  get deviceOverlapBlocks(): number {
    return this.table.get(DEVICE, this.i);
  }
  get hostOverlapBlocks(): number {
    return this.table.get(HOST, this.i);
  }
  get diskOverlapBlocks(): number {
    return this.table.get(DISK, this.i);
  }
  get activePrefillTokens(): number {
    return this.table.get(PREFILL, this.i);
  }
  get activeBlocks(): number {
    return this.table.get(BLOCKS, this.i);
  }
  get activeRequests(): number {
    return this.table.get(REQUESTS, this.i);
  }
  get newBlocks(): number {
    return this.table.get(NEW, this.i);
  }
  get cost(): number {
    return this.table.get(COST, this.i);
  }
  get busyReason(): string | null {
    return this.table.busyReasons?.[this.i] ?? null;
  }
  get excluded(): boolean {
    return this.table.excluded?.[this.i] ?? false;
  }
  get load(): RankLoad {
    return {
      activePrefillTokens: this.activePrefillTokens,
      activeBlocks: this.activeBlocks,
      activeRequests: this.activeRequests,
    };
  }
  get breakdown(): CostBreakdown {
    return computeCost(this.table.context.request, this, this.table.context.params);
  }
}

/** `target` with an enumerable `candidates` property materialised on first read. */
function withLazyCandidates<T extends object>(
  target: T,
  table: ScoreTable | null,
): T & { readonly candidates: readonly ScoredCandidate[] } {
  let cached: ScoredCandidate[] | undefined;
  return Object.defineProperty(target, "candidates", {
    enumerable: true,
    get: () => (cached ??= table ? table.all() : []),
  }) as T & {
    readonly candidates: readonly ScoredCandidate[];
  };
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
      ranks.push({
        workerId: spec.workerId,
        dpRank: r,
        key,
        kvTotalBlocks: spec.kvTotalBlocks,
        maxNumBatchedTokens: spec.maxNumBatchedTokens,
      });
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
      return this.reject(
        pinned ? "pinned_unavailable" : "no_candidates",
        pinned ? "pinned worker rank is not available" : "no eligible worker",
        null,
        NO_WORKERS,
      );
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
    const keys =
      this.tracking.activeBlocks && kvReuse ? this.sequences.trackingKeys(request.sequenceHashes) : undefined;

    const n = ranks.length;
    const handles: Array<RankHandle | undefined> = new Array(n);
    const busyReasons: Array<string | null> | null = checkBusy ? new Array(n).fill(null) : null;
    const skipped: boolean[] | null = checkBusy ? new Array(n).fill(false) : null;
    const table = new ScoreTable(ranks, busyReasons, keys, this.sequences);
    for (let i = 0; i < n; i++) {
      const r = ranks[i]!;
      const handle = this.handles.get(r);
      handles[i] = handle;
      if (!handle) continue;
      const prefill = this.sequences.activePrefillTokensOf(handle);
      const blocks = this.sequences.activeBlocksOf(handle);
      table.set(PREFILL, i, prefill);
      table.set(BLOCKS, i, blocks);
      table.set(REQUESTS, i, this.sequences.activeRequestsOf(handle));
      if (busyReasons && skipped) {
        const busyInputs = {
          activeBlocks: blocks,
          activePrefillTokens: prefill,
          kvTotalBlocks: r.kvTotalBlocks,
          maxNumBatchedTokens: r.maxNumBatchedTokens,
        };
        busyReasons[i] = rankBusyReason(busyInputs, this.busy);
        skipped[i] = overBusyThreshold(busyInputs, this.busy);
      }
    }
    const excluded = busyReasons
      ? busyWorkers(ranks.map((r, i) => ({ workerId: r.workerId, busy: busyReasons[i] !== null })))
      : NO_WORKERS;
    const eligible = new Array<number>(n);
    let eligibleCount = 0;
    let minPrefill = Infinity;
    for (let i = 0; i < n; i++) {
      if ((excluded.size > 0 && excluded.has(ranks[i]!.workerId)) || skipped?.[i]) continue;
      eligible[eligibleCount++] = i;
      minPrefill = Math.min(minPrefill, table.get(PREFILL, i));
    }
    const costRequest: CostRequest = {
      isl: request.isl,
      blockSize: this.blockSize,
      trackPrefillTokens: trackPrefill,
      minActivePrefillTokens: Number.isFinite(minPrefill) ? minPrefill : 0,
    };
    eligible.length = eligibleCount;
    table.context = { request: costRequest, params: cost };
    if (eligible.length < n) {
      table.excluded = new Array<boolean>(n).fill(true);
      for (const i of eligible) table.excluded[i] = false;
    }

    // Only ranks already holding the prompt's first block can share any of it; all others get allNew.
    const allNew = keys ? keys.keys.length * this.sequences.stride : 0;
    const holders = keys ? this.sequences.ranksHoldingFirstBlock(keys) : [];
    const sharing =
      holders.length > 0 ? new Map(holders.map((h) => [h, this.sequences.newBlocksOf(h, keys!)])) : undefined;
    const device = request.overlaps?.device;
    const hostTier = request.overlaps?.host;
    const diskTier = request.overlaps?.disk;
    const inputs = {
      deviceOverlapBlocks: 0,
      hostOverlapBlocks: 0,
      diskOverlapBlocks: 0,
      activePrefillTokens: 0,
      activeBlocks: 0,
      newBlocks: 0,
      activeRequests: 0,
    };
    for (let i = 0; i < n; i++) {
      const r = ranks[i]!;
      const handle = handles[i];
      const deviceDepth = device?.get(r.key) ?? 0;
      const hostDepth = hostTier?.get(r.key) ?? 0;
      const diskDepth = diskTier?.get(r.key) ?? 0;
      inputs.deviceOverlapBlocks = deviceDepth;
      inputs.hostOverlapBlocks = Math.max(0, hostDepth - deviceDepth);
      inputs.diskOverlapBlocks = Math.max(0, diskDepth - Math.max(deviceDepth, hostDepth));
      inputs.activePrefillTokens = table.get(PREFILL, i);
      inputs.activeBlocks = table.get(BLOCKS, i);
      inputs.activeRequests = table.get(REQUESTS, i);
      inputs.newBlocks = keys
        ? ((handle && sharing?.get(handle)) ?? allNew)
        : this.tracking.activeBlocks
          ? fullBlocks
          : 0;
      table.set(DEVICE, i, inputs.deviceOverlapBlocks);
      table.set(HOST, i, inputs.hostOverlapBlocks);
      table.set(DISK, i, inputs.diskOverlapBlocks);
      table.set(NEW, i, inputs.newBlocks);
      table.set(COST, i, costInto(scratchBreakdown, costRequest, inputs, cost));
    }
    if (eligible.length === 0) {
      const pinned = request.pinned !== undefined;
      return this.reject(
        pinned ? "pinned_overloaded" : "overloaded",
        pinned ? "pinned worker is busy" : "all eligible workers are busy",
        table,
        excluded,
      );
    }
    const chosenAt = (index: number, reason: string): Chosen =>
      withLazyCandidates(
        { kind: "chosen" as const, chosen: table.candidate(eligible[index]!), reason, busyWorkers: excluded },
        table,
      );
    if (request.pinned?.dpRank !== undefined) return chosenAt(0, "pinned");
    const policyRequest = { isl: request.isl, temperature: o.temperature ?? this.temperature };
    const state = { rng: this.rng };
    let choice: PolicyChoice;
    if (this.policy.chooseByCost) {
      let costs: ArrayLike<number>;
      if (eligible.length === n) costs = table.column(COST);
      else {
        const picked = new Array<number>(eligible.length);
        for (let k = 0; k < eligible.length; k++) picked[k] = table.get(COST, eligible[k]!);
        costs = picked;
      }
      choice = this.policy.chooseByCost(policyRequest, costs, state);
    } else {
      choice = this.policy.choose(
        policyRequest,
        eligible.map((i) => table.candidate(i)),
        state,
      );
    }
    return chosenAt(choice.index, request.pinned ? `pinned worker; ${choice.reason}` : choice.reason);
  }

  private reject(
    reason: RejectReason,
    message: string,
    table: ScoreTable | null,
    excluded: ReadonlySet<bigint>,
  ): Rejected {
    return withLazyCandidates({ kind: "rejected" as const, reason, message, busyWorkers: excluded }, table);
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
      trackingKeys:
        chosen instanceof Candidate && chosen.table.keysFrom === this.sequences ? chosen.table.trackingKeys : undefined,
      privateBlocks: blocks && !kvReuse ? request.sequenceHashes.length : 0,
      isl: request.isl,
      prefillTokens: trackPrefill ? Math.max(0, request.isl - chosen.overlapBlocks * this.blockSize) : 0,
      expectedOutputTokens: request.expectedOutputTokens,
    });
  }
}
