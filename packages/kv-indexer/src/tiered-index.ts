import type { RouterEvent, StorageTier, WorkerRank } from "./events.js";
import type { ApplyError, ApplyErrorKind, ApplyOutcome, EventGap, EventIndex, OverlapScores } from "./index-api.js";
import { RadixIndex } from "./radix-index.js";

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
 * - Events of a lower tier (`host_pinned`, `disk`, `external`) feed that tier's index (created on first
 *   use). A rank numbers its events once across every tier, so a lower-tier event also advances the
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
  private readonly lower = new Map<StorageTier, RadixIndex>();

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
  tier(tier: StorageTier): RadixIndex | undefined {
    return tier === "device" ? this.device : this.lower.get(tier);
  }

  apply(event: RouterEvent): ApplyOutcome {
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
      index = new RadixIndex({ trackEventIds: false, storageTier: event.storageTier });
      this.lower.set(event.storageTier, index);
    }
    return index.apply(event);
  }

  /** Device-tier overlap (the primary one). */
  findMatches(localHashes: BigUint64Array): OverlapScores {
    return this.device.findMatches(localHashes);
  }

  /** Forgets every rank of a worker in every tier (blocks and event-id history). */
  removeWorker(workerId: bigint): void {
    this.device.removeWorker(workerId);
    for (const index of this.lower.values()) index.removeWorker(workerId);
  }

  /** Forgets one rank in every tier. */
  removeWorkerRank(workerId: bigint, dpRank: number): void {
    this.device.removeWorkerRank(workerId, dpRank);
    for (const index of this.lower.values()) index.removeWorkerRank(workerId, dpRank);
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
