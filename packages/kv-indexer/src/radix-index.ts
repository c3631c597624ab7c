import { EventIdTracker } from "./event-tracker.js";
import { chainHash } from "./hashing.js";
import type { RouterEvent, StorageTier, StoredData, WorkerRank } from "./events.js";
import type {
  ApplyError,
  ApplyErrorKind,
  ApplyOutcome,
  BlockPosition,
  EventGap,
  EventIndex,
  OverlapScores,
} from "./index-api.js";
import { PrefixTree, ROOT, StoreStatus } from "./prefix-tree.js";
import { findOverlap } from "./overlap-scores.js";
import { HalvesScratch, joinHalves } from "./u64-halves.js";
import { WorkerSlots } from "./worker-slots.js";

export interface RadixIndexOptions {
  /** Called for every apply error (also counted in `errorCounts`). Exceptions it throws are ignored. */
  onError?: (error: ApplyError) => void;
  /** Called when an event id skips ahead (or the first id seen is above 0). Exceptions are ignored. */
  onGap?: (gap: EventGap) => void;
  /** Track event ids per worker rank: drop duplicates, report gaps. Default true. */
  trackEventIds?: boolean;
  /** Storage tier written into `dump()` events. Default `"device"`. */
  storageTier?: StorageTier;
}

/**
 * Event-driven prefix index of which worker rank holds which KV blocks (the router's radix tree).
 *
 * Applies every event it is given whatever its `storageTier`: the router keeps one `RadixIndex` per
 * tier and routes events by tier (only the device-tier index feeds the primary overlap).
 */
export class RadixIndex implements EventIndex {
  private readonly tree = new PrefixTree();
  private readonly slots = new WorkerSlots();
  private readonly tracker: EventIdTracker | undefined;
  private readonly counts: Record<ApplyErrorKind, number> = {
    parent_not_found: 0,
    block_not_found: 0,
    invalid_block_sequence: 0,
    invalid_event: 0,
  };
  private readonly onError: ((error: ApplyError) => void) | undefined;
  private readonly onGap: ((gap: EventGap) => void) | undefined;
  private readonly storageTier: StorageTier;
  private readonly engineScratch = new HalvesScratch();
  private readonly localScratch = new HalvesScratch();
  private readonly parentScratch = new HalvesScratch();

  constructor(options: RadixIndexOptions = {}) {
    this.onError = options.onError;
    this.onGap = options.onGap;
    this.storageTier = options.storageTier ?? "device";
    if (options.trackEventIds ?? true)
      this.tracker = new EventIdTracker((slot, from, to) => this.reportGap(slot, from, to));
  }

  /** Total (worker rank, block) entries held. */
  get size(): number {
    return this.tree.size;
  }

  /** Apply errors seen so far, by kind. */
  get errorCounts(): Readonly<Record<ApplyErrorKind, number>> {
    return { ...this.counts };
  }

  apply(event: RouterEvent): ApplyOutcome {
    let slot = -1;
    try {
      slot = this.slots.acquire(event.workerId, event.dpRank);
      if (this.tracker && !this.tracker.accept(slot, event.eventId)) return "duplicate";
      const data = event.data;
      switch (data.type) {
        case "stored":
          return this.applyStored(slot, event, data);
        case "removed":
          return this.applyRemoved(slot, event, data.blockHashes);
        case "cleared":
          this.tracker?.forgetMissing(slot);
          this.tree.clearSlot(slot);
          this.tree.openSlot(slot);
          return "applied";
        default:
          this.report("invalid_event", slot, event, `unknown event data ${JSON.stringify(data)}`);
          return "skipped";
      }
    } catch (err) {
      this.report("invalid_event", slot, event, err instanceof Error ? err.message : String(err));
      return "skipped";
    }
  }

  findMatches(localHashes: BigUint64Array): OverlapScores {
    return findOverlap(this.tree, this.slots, this.localScratch, localHashes);
  }

  /** Forgets every rank of a worker (blocks and event-id history). */
  removeWorker(workerId: bigint): void {
    for (const slot of this.slots.slotsOf(workerId)) this.dropSlot(slot);
  }

  /** Forgets one rank of a worker (blocks and event-id history). */
  removeWorkerRank(workerId: bigint, dpRank: number): void {
    const slot = this.slots.find(workerId, dpRank);
    if (slot >= 0) this.dropSlot(slot);
  }

  /** Removes every block of one rank, as a `cleared` event would (event-id history is kept). */
  clearWorkerRank(workerId: bigint, dpRank: number): void {
    const slot = this.slots.find(workerId, dpRank);
    if (slot >= 0) this.tree.clearSlot(slot);
  }

  /** Forgets the rank's event-id history (e.g. its publisher restarted); `nextExpected` is then accepted without a gap. */
  resetEventIds(workerId: bigint, dpRank: number, nextExpected?: bigint): void {
    if (!this.tracker) return;
    this.tracker.reset(this.slots.acquire(workerId, dpRank), nextExpected);
  }

  /** Highest event id accepted for the rank, or undefined when none (or tracking is off). */
  lastEventId(workerId: bigint, dpRank: number): bigint | undefined {
    const slot = this.slots.find(workerId, dpRank);
    return slot >= 0 ? this.tracker?.lastId(slot) : undefined;
  }

  /**
   * Where a block of a rank sits in its sequence: the chained sequence hash of the local hashes from
   * block 0 down to it, and its position (0-based). Undefined when the rank does not hold the block, or
   * holds it below a prefix that is gone. Lower storage tiers use it to continue a device-tier chain.
   */
  sequenceHashOf(workerId: bigint, dpRank: number, engineHash: bigint): BlockPosition | undefined {
    const slot = this.slots.find(workerId, dpRank);
    if (slot < 0) return undefined;
    const words = this.parentScratch.loadOne(engineHash);
    const node = this.tree.nodeOf(slot, words[0]!, words[1]!);
    const path = node < 0 ? undefined : this.tree.pathTo(node);
    if (!path) return undefined;
    let seq = 0n;
    for (let i = 0; i < path.length; i += 2) {
      const local = joinHalves(path[i]!, path[i + 1]!);
      seq = i === 0 ? local : chainHash(seq, local);
    }
    return { sequenceHash: seq, position: path.length / 2 - 1 };
  }

  /** Worker ranks the index knows (including ranks whose blocks were all cleared). */
  workers(): WorkerRank[] {
    return this.slots
      .allocated()
      .filter((slot) => this.tree.hasSlot(slot))
      .map((slot) => this.slots.rank(slot));
  }

  /**
   * The whole state as single-block `stored` events, breadth-first (parents first), with event ids
   * numbered from 0 per worker rank. Replaying them into an empty index rebuilds the same overlaps.
   */
  dump(): RouterEvent[] {
    const out: RouterEvent[] = [];
    const nextId = new Map<number, bigint>();
    this.tree.dump((slot, parent, node, engineLo, engineHi, parentLo, parentHi) => {
      const { workerId, dpRank } = this.slots.rank(slot);
      const eventId = nextId.get(slot) ?? 0n;
      nextId.set(slot, eventId + 1n);
      const [localLo, localHi] = this.tree.localHashOf(node);
      out.push({
        workerId,
        dpRank,
        eventId,
        storageTier: this.storageTier,
        data: {
          type: "stored",
          parentHash: parent === ROOT ? null : joinHalves(parentLo, parentHi),
          startPosition: null,
          blockHashes: BigUint64Array.of(joinHalves(engineLo, engineHi)),
          tokensHashes: BigUint64Array.of(joinHalves(localLo, localHi)),
        },
      });
    });
    return out;
  }

  private applyStored(slot: number, event: RouterEvent, data: StoredData): ApplyOutcome {
    const count = data.blockHashes.length;
    if (data.tokensHashes.length !== count) {
      this.report("invalid_event", slot, event, `${count} block hashes but ${data.tokensHashes.length} tokens hashes`);
      return "skipped";
    }
    const parent = data.parentHash;
    let parentLo = 0;
    let parentHi = 0;
    if (parent !== null) {
      const words = this.parentScratch.loadOne(parent);
      parentLo = words[0]!;
      parentHi = words[1]!;
    }
    const status = this.tree.storeRun(
      slot,
      parent !== null,
      parentLo,
      parentHi,
      this.engineScratch.load(data.blockHashes),
      this.localScratch.load(data.tokensHashes),
      0,
      count,
    );
    if (status === StoreStatus.Stored) return "applied";
    const applied = this.tree.lastStoreApplied;
    if (status === StoreStatus.ParentNotFound) {
      this.report("parent_not_found", slot, event, `parent block ${parent} unknown; ${count} blocks skipped`);
    } else {
      this.report(
        "invalid_block_sequence",
        slot,
        event,
        `block ${data.blockHashes[applied]} at ${applied} would be its own ancestor; ${count - applied} blocks rejected`,
      );
    }
    return applied > 0 ? "partial" : "skipped";
  }

  private applyRemoved(slot: number, event: RouterEvent, hashes: BigUint64Array): ApplyOutcome {
    const words = this.engineScratch.load(hashes);
    let missing = 0;
    for (let i = 0; i < hashes.length; i++) {
      if (this.tree.remove(slot, words[2 * i]!, words[2 * i + 1]!)) continue;
      missing++;
      this.report("block_not_found", slot, event, `block ${hashes[i]} unknown`);
    }
    if (missing === 0) return "applied";
    return missing < hashes.length ? "partial" : "skipped";
  }

  private dropSlot(slot: number): void {
    this.tree.closeSlot(slot);
    this.tracker?.reset(slot);
    this.slots.release(slot);
  }

  private report(kind: ApplyErrorKind, slot: number, event: RouterEvent, detail: string): void {
    this.counts[kind]++;
    if (!this.onError) return;
    const workerKey = slot >= 0 ? this.slots.key(slot) : `${String(event?.workerId)}/${String(event?.dpRank)}`;
    try {
      this.onError({ kind, workerKey, eventId: event?.eventId, detail });
    } catch {
      // A failing listener must not stop event processing.
    }
  }

  private reportGap(slot: number, from: bigint, to: bigint): void {
    if (!this.onGap) return;
    const { workerId, dpRank } = this.slots.rank(slot);
    try {
      this.onGap({ workerKey: this.slots.key(slot), workerId, dpRank, from, to });
    } catch {
      // A failing listener must not stop event processing.
    }
  }
}
