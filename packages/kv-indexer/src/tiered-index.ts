import type { RouterEvent, StorageTier, WorkerRank, WorkerRankKey } from "./events.js";
import { computeSequenceHashes } from "./hashing.js";
import type {
  ApplyError,
  ApplyErrorKind,
  ApplyOutcome,
  BlockPosition,
  EventGap,
  EventIndex,
  OverlapScores,
} from "./index-api.js";
import { LowerTierIndex } from "./lower-tier-index.js";
import { RadixIndex } from "./radix-index.js";

/** Lower-tier hits of one query, each a continuation of the match before it (see `TieredIndex.continuations`). */
export interface TierContinuations {
  /** Host-tier blocks right after the rank's device prefix. */
  readonly host: ReadonlyMap<WorkerRankKey, number>;
  /** Disk-tier blocks right after the device prefix and its host continuation. */
  readonly disk: ReadonlyMap<WorkerRankKey, number>;
}

const NO_HITS: ReadonlyMap<WorkerRankKey, number> = new Map();

/** Events of one worker (all ranks and tiers) the index took, and those it refused. */
export interface WorkerEventCounts {
  /** Applied in whole or in part. */
  applied: number;
  /** Refused in whole or in part (unknown parent, unknown block, invalid data). Duplicates are neither. */
  rejected: number;
}

export interface TieredIndexOptions {
  /** Apply errors of the device tier (lower tiers count theirs in `errorCounts` of their own index). */
  onError?: (error: ApplyError) => void;
  /** Event-id gaps of a worker rank (ids are numbered per rank across every tier). */
  onGap?: (gap: EventGap) => void;
}

const NO_BLOCKS = new BigUint64Array(0);

/**
 * The KV index of a router: one `RadixIndex` per storage tier, fed by one event stream per worker rank.
 *
 * - `device` events feed the primary index, the one overlaps are scored on.
 * - Events of a lower tier (`host_pinned`, `disk`, `external`) feed that tier's `LowerTierIndex`
 *   (created on first use). A lower-tier run may continue a block only the device tier (or another lower
 *   tier) holds: its parent is looked up across tiers. Lower-tier hits are counted as a continuation of
 *   the device match (`continuations`). A rank numbers its events once across every tier, so a lower-tier event also advances the
 *   rank's event id in the device index (as an empty removal): gaps and duplicates are judged on the one
 *   sequence, and only the device index tracks ids.
 * - A device `cleared` clears the rank in every tier (a duplicate `cleared` clears nothing).
 *
 * The event subscribers (`@dynamo/kv-events`) and the router (`@dynamo/kv-router`) share one instance:
 * events land where routing decisions read.
 */
export class TieredIndex implements EventIndex {
  /** The device tier: the primary overlap, event-id tracking, dumps. */
  readonly device: RadixIndex;
  private readonly lower = new Map<StorageTier, LowerTierIndex>();
  private readonly perWorker = new Map<bigint, WorkerEventCounts>();

  constructor(options: TieredIndexOptions = {}) {
    this.device = new RadixIndex({ onError: options.onError, onGap: options.onGap });
  }

  /** Device-tier (worker rank, block) entries. */
  get size(): number {
    return this.device.size;
  }

  /** Device-tier apply errors by kind. */
  get errorCounts(): Readonly<Record<ApplyErrorKind, number>> {
    return this.device.errorCounts;
  }

  /** The index of a tier, or undefined for a lower tier no event has reached yet. */
  tier(tier: "device"): RadixIndex;
  tier(tier: StorageTier): RadixIndex | LowerTierIndex | undefined;
  tier(tier: StorageTier): RadixIndex | LowerTierIndex | undefined {
    return tier === "device" ? this.device : this.lower.get(tier);
  }

  /**
   * Lower-tier hits of a query as continuations: for each rank, the host-tier blocks right after its
   * `device` prefix depth, then the disk-tier blocks right after those. `device` is the device-tier
   * overlap the caller scores with (`findMatches`, possibly combined with a side index).
   */
  continuations(localHashes: BigUint64Array, device: ReadonlyMap<WorkerRankKey, number>): TierContinuations {
    const hostIndex = this.lower.get("host_pinned");
    const diskIndex = this.lower.get("disk");
    if (!(hostIndex?.size || diskIndex?.size) || localHashes.length === 0) return { host: NO_HITS, disk: NO_HITS };
    const sequence = computeSequenceHashes(localHashes);
    const host = hostIndex?.size ? hostIndex.continuations(sequence, device) : NO_HITS;
    if (!diskIndex?.size) return { host, disk: NO_HITS };
    let afterHost = device;
    if (host.size > 0) {
      const sum = new Map(device);
      for (const [key, n] of host) sum.set(key, (sum.get(key) ?? 0) + n);
      afterHost = sum;
    }
    return { host, disk: diskIndex.continuations(sequence, afterHost) };
  }

  apply(event: RouterEvent): ApplyOutcome {
    const outcome = this.applyToTier(event);
    if (outcome !== "duplicate") {
      let counts = this.perWorker.get(event.workerId);
      if (!counts) this.perWorker.set(event.workerId, (counts = { applied: 0, rejected: 0 }));
      if (outcome !== "skipped") counts.applied++;
      if (outcome !== "applied") counts.rejected++;
    }
    return outcome;
  }

  /** Events applied and rejected per worker id, since the worker was first seen (or last removed). */
  workerEventCounts(): ReadonlyMap<bigint, Readonly<WorkerEventCounts>> {
    return this.perWorker;
  }

  private applyToTier(event: RouterEvent): ApplyOutcome {
    if (event.storageTier === "device") {
      const outcome = this.device.apply(event);
      if (outcome !== "duplicate" && event.data.type === "cleared") {
        for (const index of this.lower.values()) index.clearWorkerRank(event.workerId, event.dpRank);
      }
      return outcome;
    }
    const id = this.device.apply({
      ...event,
      storageTier: "device",
      data: { type: "removed", blockHashes: NO_BLOCKS },
    });
    if (id === "duplicate") return id;
    let index = this.lower.get(event.storageTier);
    if (!index) {
      const tier = event.storageTier;
      index = new LowerTierIndex(tier, (w, r, hash) => this.positionOf(w, r, hash, tier));
      this.lower.set(tier, index);
    }
    return index.apply(event);
  }

  /** Where a rank's block sits, looked up in the device tier, then in every lower tier but `except`. */
  private positionOf(
    workerId: bigint,
    dpRank: number,
    engineHash: bigint,
    except: StorageTier,
  ): BlockPosition | undefined {
    const onDevice = this.device.sequenceHashOf(workerId, dpRank, engineHash);
    if (onDevice) return onDevice;
    for (const [tier, index] of this.lower) {
      if (tier === except) continue;
      const found = index.positionOf(workerId, dpRank, engineHash);
      if (found) return found;
    }
    return undefined;
  }

  /** Device-tier overlap (the primary one). */
  findMatches(localHashes: BigUint64Array): OverlapScores {
    return this.device.findMatches(localHashes);
  }

  /** Forgets every rank of a worker in every tier (blocks and event-id history). */
  removeWorker(workerId: bigint): void {
    this.perWorker.delete(workerId);
    this.device.removeWorker(workerId);
    for (const index of this.lower.values()) index.removeWorker(workerId);
  }

  /** Forgets one rank in every tier. */
  removeWorkerRank(workerId: bigint, dpRank: number): void {
    this.device.removeWorkerRank(workerId, dpRank);
    for (const index of this.lower.values()) index.clearWorkerRank(workerId, dpRank);
  }

  /** Removes every block of one rank in every tier (event-id history kept). */
  clearWorkerRank(workerId: bigint, dpRank: number): void {
    this.device.clearWorkerRank(workerId, dpRank);
    for (const index of this.lower.values()) index.clearWorkerRank(workerId, dpRank);
  }

  /** See `RadixIndex.resetEventIds`. */
  resetEventIds(workerId: bigint, dpRank: number, nextExpected?: bigint): void {
    this.device.resetEventIds(workerId, dpRank, nextExpected);
  }

  /** Highest event id accepted for the rank (any tier), or undefined. */
  lastEventId(workerId: bigint, dpRank: number): bigint | undefined {
    return this.device.lastEventId(workerId, dpRank);
  }

  /** Ranks the device index knows. */
  workers(): WorkerRank[] {
    return this.device.workers();
  }

  /** The device tier as single-block `stored` events (see `RadixIndex.dump`). */
  dump(): RouterEvent[] {
    return this.device.dump();
  }
}
