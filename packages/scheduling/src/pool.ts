import { workerRankKey } from "@dynamo/kv-indexer";
import type { Rng } from "@dynamo/primitives";
import type { BusyThresholds } from "./busy.js";
import { DEFAULT_COST_PARAMS, type CostParams } from "./cost.js";
import { BusyFilter } from "./filters.js";
import { KvCostPicker } from "./pickers.js";
import { KvCostScorer } from "./scorers.js";
import { ActiveSequences, type RankHandle, type SequenceChange } from "./sequences/active-sequences.js";
import {
  BLOCKS,
  COST,
  Candidate,
  DEVICE,
  DISK,
  HOST,
  NEW,
  NO_WORKERS,
  PREFILL,
  REQUESTS,
  ScoreTable,
  withLazyCandidates,
  type LoadDelta,
} from "./score-table.js";
import type {
  Chosen,
  Evaluation,
  Filter,
  Picker,
  PolicyChoice,
  PoolRequest,
  RankInfo,
  RejectReason,
  Rejected,
  ScoredCandidate,
  Scorer,
  WorkerSpec,
} from "./types.js";

export interface WorkerPoolOptions {
  readonly blockSize: number;
  readonly cost?: Partial<CostParams>;
  readonly temperature?: number;
  /**
   * With temperature 0, candidates whose cost is within `tieBand × prompt blocks` of the cheapest count as tied
   * and one is drawn at random (default 0: exact ties only). Router replicas deciding at the same instant on the
   * same state then split over near-equal workers instead of all taking the cheapest.
   */
  readonly tieBand?: number;
  readonly busy?: BusyThresholds;
  /** Chooses among the eligible candidates (default `KvCostPicker`: Dynamo's minimum cost / softmax). */
  readonly picker?: Picker;
  /** Gives each candidate its cost (default `KvCostScorer`: Dynamo's cost function). */
  readonly scorer?: Scorer;
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

/**
 * A set of worker ranks with their in-flight load. `evaluate` runs one pipeline per request: candidate
 * ranks (subset hint, pin) → their numbers (overlaps, load, new blocks) → filters (busy thresholds) →
 * scorer (cost) → picker.
 * `evaluate` reads state only; `book` records a choice. Callers that need atomic select-and-book call
 * both in one synchronous step.
 */
export class WorkerPool {
  readonly blockSize: number;
  readonly sequences: ActiveSequences;
  readonly picker: Picker;
  readonly scorer: Scorer;
  readonly filters: readonly Filter[];
  readonly cost: CostParams;
  readonly temperature: number;
  readonly tieBand: number;
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
    this.tieBand = options.tieBand ?? 0;
    this.busy = options.busy ?? {};
    this.picker = options.picker ?? new KvCostPicker();
    this.scorer = options.scorer ?? new KvCostScorer();
    this.filters = [new BusyFilter(this.busy)];
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

  /** Runs the pipeline for a request: candidates, their numbers, filters, scorer, picker. Does not book. */
  evaluate(request: PoolRequest): Evaluation {
    const ranks = this.candidates(request);
    const pinned = request.pinned !== undefined;
    if (ranks.length === 0)
      return this.reject(
        pinned ? "pinned_unavailable" : "no_candidates",
        pinned ? "pinned worker rank is not available" : "no eligible worker",
        null,
      );
    const table = this.measure(ranks, request);
    let eligible: readonly number[] = ranks.map((_, i) => i);
    for (const filter of this.filters) eligible = filter.filter(table, eligible);
    this.prepareScoring(table, eligible, request);
    const extra = request.extraCost;
    for (let i = 0; i < ranks.length; i++)
      table.set(COST, i, this.scorer.score(table, i) + (extra?.get(ranks[i]!.workerId) ?? 0));
    if (eligible.length === 0)
      return this.reject(
        pinned ? "pinned_overloaded" : "overloaded",
        pinned ? "pinned worker is busy" : "all eligible workers are busy",
        table,
      );
    return this.pick(table, eligible, request);
  }

  /** The ranks a request may go to: the pinned worker (rank), or every rank, narrowed by the allowed workers. */
  private candidates(request: PoolRequest): readonly RankInfo[] {
    const pin = request.pinned;
    if (pin) {
      if (request.allowedWorkers && !request.allowedWorkers.has(pin.workerId)) return [];
      const ranks = this.workers.get(pin.workerId) ?? [];
      return pin.dpRank === undefined ? ranks : ranks.filter((r) => r.dpRank === pin.dpRank);
    }
    const allowed = request.allowedWorkers;
    return allowed ? this.rankList.filter((r) => allowed.has(r.workerId)) : this.rankList;
  }

  /** Every candidate's numbers: load from the bookkeeping, prefix overlaps per tier, blocks not yet active. */
  private measure(ranks: readonly RankInfo[], request: PoolRequest): ScoreTable {
    const kvReuse = request.overrides?.assumeKvReuse ?? this.tracking.kvReuse;
    const keys =
      this.tracking.activeBlocks && kvReuse ? this.sequences.trackingKeys(request.sequenceHashes) : undefined;
    const table = new ScoreTable(ranks, keys, this.sequences);
    // Only ranks already holding the prompt's first block can share any of it; all others get allNew.
    const allNew = keys
      ? keys.keys.length * this.sequences.stride
      : this.tracking.activeBlocks
        ? request.sequenceHashes.length
        : 0;
    const holders = keys ? this.sequences.ranksHoldingFirstBlock(keys) : [];
    const sharing =
      holders.length > 0 ? new Map(holders.map((h) => [h, this.sequences.newBlocksOf(h, keys!)])) : undefined;
    const { device, host, disk } = request.overlaps ?? {};
    for (let i = 0; i < ranks.length; i++) {
      const r = ranks[i]!;
      const handle: RankHandle | undefined = this.handles.get(r);
      if (handle) {
        table.set(PREFILL, i, this.sequences.activePrefillTokensOf(handle));
        table.set(BLOCKS, i, this.sequences.activeBlocksOf(handle));
        table.set(REQUESTS, i, this.sequences.activeRequestsOf(handle));
      }
      table.set(DEVICE, i, device?.get(r.key) ?? 0);
      table.set(HOST, i, host?.get(r.key) ?? 0);
      table.set(DISK, i, disk?.get(r.key) ?? 0);
      table.set(NEW, i, (handle && sharing?.get(handle)) ?? allNew);
    }
    return table;
  }

  /** Request-level scoring inputs (with the request's overrides), and which candidates the filters dropped. */
  private prepareScoring(table: ScoreTable, eligible: readonly number[], request: PoolRequest): void {
    const o = request.overrides ?? {};
    let minPrefill = Infinity;
    for (const i of eligible) minPrefill = Math.min(minPrefill, table.get(PREFILL, i));
    const params: CostParams = {
      ...this.cost,
      ...(o.overlapScoreCredit !== undefined && { overlapScoreCredit: o.overlapScoreCredit }),
      ...(o.prefillLoadScale !== undefined && { prefillLoadScale: o.prefillLoadScale }),
    };
    table.context = {
      request: {
        isl: request.isl,
        blockSize: this.blockSize,
        trackPrefillTokens: o.trackPrefillTokens ?? this.tracking.prefillTokens,
        minActivePrefillTokens: Number.isFinite(minPrefill) ? minPrefill : 0,
      },
      params,
    };
    if (eligible.length < table.ranks.length) {
      table.excluded = new Array<boolean>(table.ranks.length).fill(true);
      for (const i of eligible) table.excluded[i] = false;
    }
  }

  /** The picker's choice among the eligible candidates (a pinned rank is taken as it is). */
  private pick(table: ScoreTable, eligible: readonly number[], request: PoolRequest): Chosen {
    const chosenAt = (index: number, reason: string): Chosen =>
      withLazyCandidates(
        {
          kind: "chosen" as const,
          chosen: table.candidate(eligible[index]!),
          reason,
          pinned: request.pinned !== undefined,
          busyWorkers: table.busyWorkers,
        },
        table,
      );
    if (request.pinned?.dpRank !== undefined) return chosenAt(0, "pinned");
    const pickRequest = {
      isl: request.isl,
      temperature: request.overrides?.temperature ?? this.temperature,
      ...(this.tieBand > 0 && { tieBand: (this.tieBand * request.isl) / this.blockSize }),
    };
    const state = { rng: this.rng };
    let choice: PolicyChoice;
    if (this.picker.chooseByCost) {
      let costs: ArrayLike<number>;
      if (eligible.length === table.ranks.length) costs = table.column(COST);
      else {
        const picked = new Array<number>(eligible.length);
        for (let k = 0; k < eligible.length; k++) picked[k] = table.get(COST, eligible[k]!);
        costs = picked;
      }
      choice = this.picker.chooseByCost(pickRequest, costs, state);
    } else {
      choice = this.picker.choose(
        pickRequest,
        eligible.map((i) => table.candidate(i)),
        state,
      );
    }
    return chosenAt(choice.index, request.pinned ? `pinned worker; ${choice.reason}` : choice.reason);
  }

  private reject(reason: RejectReason, message: string, table: ScoreTable | null): Rejected {
    return withLazyCandidates(
      { kind: "rejected" as const, reason, message, busyWorkers: table?.busyWorkers ?? NO_WORKERS },
      table,
    );
  }

  /**
   * Prompt tokens the rank still has to prefill: `max(0, isl − round((device + hostWeight·host +
   * diskWeight·disk) · blockSize))`, lower-tier hits weighted as in the cost function.
   */
  uncachedPromptTokens(isl: number, c: ScoredCandidate): number {
    const cachedBlocks =
      c.overlapBlocks +
      this.cost.hostCacheHitWeight * c.hostOverlapBlocks +
      this.cost.diskCacheHitWeight * c.diskOverlapBlocks;
    return Math.max(0, isl - Math.round(cachedBlocks * this.blockSize));
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
      prefillTokens: trackPrefill ? this.uncachedPromptTokens(request.isl, chosen) : 0,
      expectedOutputTokens: request.expectedOutputTokens,
    });
  }

  /**
   * Scores a past choice again as if its ranks had carried `deltas` more load (bookings it did not know of),
   * with the same scorer, context and extra costs, and says which eligible rank would then cost least.
   * `changed` is false when the chosen rank is still among the cheapest (ties keep the choice) or was pinned.
   */
  rescore(evaluation: Chosen, deltas: ReadonlyMap<string, LoadDelta>): { changed: boolean; best: RankInfo } {
    const chosen = evaluation.chosen;
    if (!(chosen instanceof Candidate) || evaluation.pinned) return { changed: false, best: chosen.rank };
    const before = chosen.table;
    const after = before.withLoadDeltas(deltas);
    const chosenIndex = before.ranks.indexOf(chosen.rank);
    const costOf = (i: number) =>
      // The extra cost (LoRA penalty) the evaluation added on top of the scorer's, kept as it was.
      this.scorer.score(after, i) + (before.get(COST, i) - this.scorer.score(before, i));
    const chosenCost = costOf(chosenIndex);
    let best = chosenIndex;
    let bestCost = chosenCost;
    for (let i = 0; i < before.ranks.length; i++) {
      if (i === chosenIndex || before.excluded?.[i] === true) continue;
      const cost = costOf(i);
      if (cost < bestCost - 1e-9) {
        best = i;
        bestCost = cost;
      }
    }
    return { changed: best !== chosenIndex, best: before.ranks[best]! };
  }
}
