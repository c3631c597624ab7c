import type { RouterEvent, WorkerRankKey } from "./events.js";

/**
 * Contract of every KV index in this package (event-driven, approximate, and their combination).
 * Consumers (scorer, KvRouter, event transports) depend on these types only.
 */

/** Per-worker-rank prefix overlap for one query. */
export interface OverlapScores {
  /** Matched depth in blocks per worker rank; ranks with no match are absent. */
  readonly scores: ReadonlyMap<WorkerRankKey, number>;
  /** Number of blocks each scored worker rank holds in the index (its lookup-table size). */
  readonly treeSizes: ReadonlyMap<WorkerRankKey, number>;
}

/** Why an event (or part of it) could not be applied. Never thrown: counted and reported. */
export type ApplyErrorKind =
  | "parent_not_found" // stored run whose parent hash is unknown for that worker rank: the whole run is skipped
  | "block_not_found" // removal of an unknown engine hash: that hash is skipped
  | "invalid_block_sequence" // a block would become its own ancestor, or duplicates inside one run
  | "invalid_event"; // malformed data (e.g. hash lists of different lengths)

export interface ApplyError {
  readonly kind: ApplyErrorKind;
  readonly workerKey: WorkerRankKey;
  readonly eventId: bigint;
  readonly detail: string;
}

/** Event-id gap seen for a worker rank: events `[from, to]` (inclusive) never arrived. */
export interface EventGap {
  readonly workerKey: WorkerRankKey;
  readonly workerId: bigint;
  readonly dpRank: number;
  readonly from: bigint;
  readonly to: bigint;
}

/** Where a block sits in its prefix chain (see `RadixIndex.sequenceHashOf`). */
export interface BlockPosition {
  /** Chained sequence hash of the local hashes from block 0 to this block (`computeSequenceHashes`). */
  readonly sequenceHash: bigint;
  /** 0-based block position. */
  readonly position: number;
}

/** Outcome of applying one event. */
export type ApplyOutcome = "applied" | "partial" | "skipped" | "duplicate";

/** Something that answers "which worker ranks already hold this prefix, and how deep?". */
export interface OverlapSource {
  /** Overlap of the query's local block hashes (in order from block 0) with every worker rank. */
  findMatches(localHashes: BigUint64Array): OverlapScores;
}

/** An index fed by KV-cache events. */
export interface EventIndex extends OverlapSource {
  /** Applies one event; errors are reported through the index's `onError` callback and counters. */
  apply(event: RouterEvent): ApplyOutcome;
  /** Forgets every rank of a worker (discovery says it is gone). */
  removeWorker(workerId: bigint): void;
  /** The whole state as single-block `stored` events, breadth-first; replaying them rebuilds the index. */
  dump(): RouterEvent[];
  /** Total (worker rank, block) entries held. */
  readonly size: number;
}
