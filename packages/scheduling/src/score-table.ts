import { computeCost, type CostBreakdown, type CostInputs, type CostParams, type CostRequest } from "./cost.js";
import { DEFAULT_COST_PARAMS } from "./cost.js";
import type { ActiveSequences, RankLoad, TrackingKeys } from "./sequences/active-sequences.js";
import type { CandidateTable, RankInfo, ScoredCandidate } from "./types.js";

/**
 * The numbers of one evaluation, column-wise: every candidate rank's overlaps, load, new blocks and
 * cost in one `Float64Array`. Filters, the scorer and the picker read and write it; candidate objects
 * (`ScoredCandidate`) are made only when a caller asks for them (explain records, load-based pickers).
 */

/** The cost function's request-level inputs and parameters for this evaluation. */
export interface CostContext {
  readonly request: CostRequest;
  readonly params: CostParams;
}

// Column layout of a ScoreTable: one array holds every per-rank number of one evaluation.
export const DEVICE = 0;
export const HOST = 1;
export const DISK = 2;
export const PREFILL = 3;
export const BLOCKS = 4;
export const REQUESTS = 5;
export const NEW = 6;
export const COST = 7;
const COLUMNS = 8;

/** Everything computed for one evaluation, column-wise; candidate objects are made only when asked for. */
export const NO_WORKERS: ReadonlySet<bigint> = new Set();

export class ScoreTable implements CandidateTable {
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

  /** Why each rank is over a busy threshold (null: it is not); null when no threshold is on. */
  busyReasons: ReadonlyArray<string | null> | null = null;
  /** Workers excluded because every one of their ranks is busy. */
  busyWorkers: ReadonlySet<bigint> = NO_WORKERS;

  constructor(
    readonly ranks: readonly RankInfo[],
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

  /**
   * A copy of this table whose ranks carry extra load (`deltas` by rank key: prefill tokens, active blocks
   * and requests added, e.g. by bookings this evaluation did not know of). Costs are copied, not recomputed.
   */
  withLoadDeltas(deltas: ReadonlyMap<string, LoadDelta>): ScoreTable {
    const copy = new ScoreTable(this.ranks, this.trackingKeys, this.keysFrom);
    copy.values.set(this.values);
    copy.excluded = this.excluded;
    copy.context = this.context;
    copy.busyReasons = this.busyReasons;
    copy.busyWorkers = this.busyWorkers;
    for (let i = 0; i < this.ranks.length; i++) {
      const delta = deltas.get(this.ranks[i]!.key);
      if (delta === undefined) continue;
      copy.set(PREFILL, i, Math.max(0, copy.get(PREFILL, i) + delta.prefillTokens));
      copy.set(BLOCKS, i, Math.max(0, copy.get(BLOCKS, i) + delta.blocks));
      copy.set(REQUESTS, i, Math.max(0, copy.get(REQUESTS, i) + delta.requests));
    }
    return copy;
  }
}

/** Load added to one rank (negative: removed). */
export interface LoadDelta {
  readonly prefillTokens: number;
  readonly blocks: number;
  readonly requests: number;
}

/** A scored rank backed by its table row (also the cost function's input, for the breakdown). */
export class Candidate implements ScoredCandidate, CostInputs {
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
export function withLazyCandidates<T extends object>(
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
