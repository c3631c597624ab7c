import {
  workerRankKey,
  type RouterEvent,
  type StorageTier,
  type StoredData,
  type WorkerRank,
  type WorkerRankKey,
} from "./events.js";
import type { ApplyError, ApplyErrorKind, ApplyOutcome, BlockPosition } from "./index-api.js";
import { chainHash } from "./hashing.js";

/** Finds a rank's block in the other tiers (a lower-tier run may continue a device-tier block). */
export type ParentResolver = (workerId: bigint, dpRank: number, engineHash: bigint) => BlockPosition | undefined;

interface Entry {
  readonly sequenceHash: bigint;
  readonly position: number;
  readonly localHash: bigint;
  readonly parentHash: bigint | null;
}

interface RankBlocks extends WorkerRank {
  /** Engine hash → where the block sits. */
  readonly byEngine: Map<bigint, Entry>;
  /** Sequence hash → how many engine hashes of the rank name it. */
  readonly bySequence: Map<bigint, number>;
}

/**
 * One lower storage tier (host memory, disk, external) of every worker rank: which blocks it holds, by
 * their position-aware sequence hash. Lower tiers are credited as a continuation of the device-tier
 * match (the blocks right after the device prefix), so a run stored here may continue a block that only
 * the device tier holds: its parent is looked up here first, then through `resolveParent`.
 */
export class LowerTierIndex {
  private readonly ranks = new Map<WorkerRankKey, RankBlocks>();
  private entries = 0;
  private readonly counts: Record<ApplyErrorKind, number> = {
    parent_not_found: 0,
    block_not_found: 0,
    invalid_block_sequence: 0,
    invalid_event: 0,
  };

  constructor(
    readonly storageTier: StorageTier,
    private readonly resolveParent: ParentResolver,
    private readonly onError?: (error: ApplyError) => void,
  ) {}

  /** Total (worker rank, block) entries held. */
  get size(): number {
    return this.entries;
  }

  /** Apply errors seen so far, by kind. */
  get errorCounts(): Readonly<Record<ApplyErrorKind, number>> {
    return { ...this.counts };
  }

  /** Applies one event of this tier (event ids are tracked by the device index). */
  apply(event: RouterEvent): ApplyOutcome {
    const data = event.data;
    switch (data.type) {
      case "stored":
        return this.applyStored(event, data);
      case "removed": {
        const rank = this.ranks.get(workerRankKey(event.workerId, event.dpRank));
        let missing = 0;
        for (const hash of data.blockHashes) {
          if (rank && this.drop(rank, hash)) continue;
          missing++;
          this.report("block_not_found", event, `block ${hash} unknown`);
        }
        if (missing === 0) return "applied";
        return missing < data.blockHashes.length ? "partial" : "skipped";
      }
      case "cleared":
        this.clearWorkerRank(event.workerId, event.dpRank);
        return "applied";
      default:
        this.report("invalid_event", event, `unknown event data ${JSON.stringify(data)}`);
        return "skipped";
    }
  }

  /** Where the rank's block with this engine hash sits, when this tier holds it. */
  positionOf(workerId: bigint, dpRank: number, engineHash: bigint): BlockPosition | undefined {
    return this.ranks.get(workerRankKey(workerId, dpRank))?.byEngine.get(engineHash);
  }

  /**
   * Per rank holding anything here: how many consecutive query blocks, starting at the rank's
   * `from` position (default 0), this tier holds. Ranks with none are absent.
   */
  continuations(sequenceHashes: BigUint64Array, from: ReadonlyMap<WorkerRankKey, number>): Map<WorkerRankKey, number> {
    const out = new Map<WorkerRankKey, number>();
    for (const [key, rank] of this.ranks) {
      const start = from.get(key) ?? 0;
      let end = start;
      while (end < sequenceHashes.length && rank.bySequence.has(sequenceHashes[end]!)) end++;
      if (end > start) out.set(key, end - start);
    }
    return out;
  }

  /** Forgets every rank of a worker. */
  removeWorker(workerId: bigint): void {
    for (const rank of [...this.ranks.values()])
      if (rank.workerId === workerId) this.clearWorkerRank(workerId, rank.dpRank);
  }

  /** Removes every block of one rank. */
  clearWorkerRank(workerId: bigint, dpRank: number): void {
    const key = workerRankKey(workerId, dpRank);
    const rank = this.ranks.get(key);
    if (!rank) return;
    this.entries -= rank.byEngine.size;
    this.ranks.delete(key);
  }

  /** The tier as single-block `stored` events, parents first, event ids from 0 per rank. */
  dump(): RouterEvent[] {
    const out: RouterEvent[] = [];
    for (const rank of this.ranks.values()) {
      const blocks = [...rank.byEngine].sort((a, b) => a[1].position - b[1].position);
      let eventId = 0n;
      for (const [engineHash, entry] of blocks) {
        out.push({
          workerId: rank.workerId,
          dpRank: rank.dpRank,
          eventId: eventId++,
          storageTier: this.storageTier,
          data: {
            type: "stored",
            parentHash: entry.parentHash,
            startPosition: null,
            blockHashes: BigUint64Array.of(engineHash),
            tokensHashes: BigUint64Array.of(entry.localHash),
          },
        });
      }
    }
    return out;
  }

  private applyStored(event: RouterEvent, data: StoredData): ApplyOutcome {
    const count = data.blockHashes.length;
    if (data.tokensHashes.length !== count) {
      this.report("invalid_event", event, `${count} block hashes but ${data.tokensHashes.length} tokens hashes`);
      return "skipped";
    }
    const { workerId, dpRank } = event;
    const key = workerRankKey(workerId, dpRank);
    let rank = this.ranks.get(key);
    let previous: BlockPosition | undefined;
    if (data.parentHash !== null) {
      previous =
        rank?.byEngine.get(data.parentHash) ?? this.resolveParent(workerId, dpRank, data.parentHash) ?? undefined;
      if (!previous) {
        this.report("parent_not_found", event, `parent block ${data.parentHash} unknown; ${count} blocks skipped`);
        return "skipped";
      }
    }
    if (!rank) this.ranks.set(key, (rank = { workerId, dpRank, byEngine: new Map(), bySequence: new Map() }));
    let parentHash = data.parentHash;
    for (let i = 0; i < count; i++) {
      const engineHash = data.blockHashes[i]!;
      const localHash = data.tokensHashes[i]!;
      const entry: Entry = {
        sequenceHash: previous ? chainHash(previous.sequenceHash, localHash) : localHash,
        position: previous ? previous.position + 1 : 0,
        localHash,
        parentHash,
      };
      this.drop(rank, engineHash);
      rank.byEngine.set(engineHash, entry);
      rank.bySequence.set(entry.sequenceHash, (rank.bySequence.get(entry.sequenceHash) ?? 0) + 1);
      this.entries++;
      previous = entry;
      parentHash = engineHash;
    }
    return "applied";
  }

  private drop(rank: RankBlocks, engineHash: bigint): boolean {
    const entry = rank.byEngine.get(engineHash);
    if (!entry) return false;
    rank.byEngine.delete(engineHash);
    this.entries--;
    const n = rank.bySequence.get(entry.sequenceHash)!;
    if (n > 1) rank.bySequence.set(entry.sequenceHash, n - 1);
    else rank.bySequence.delete(entry.sequenceHash);
    return true;
  }

  private report(kind: ApplyErrorKind, event: RouterEvent, detail: string): void {
    this.counts[kind]++;
    try {
      this.onError?.({ kind, workerKey: workerRankKey(event.workerId, event.dpRank), eventId: event.eventId, detail });
    } catch {
      // A failing listener must not stop event processing.
    }
  }
}
