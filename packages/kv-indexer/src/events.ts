/**
 * The router's KV-cache event model: what a worker rank reports about its prefix cache.
 * Hashes, worker ids and event ids are unsigned 64-bit values held as `bigint`; per-block hash lists
 * are `BigUint64Array`s so that the index can read them as uint32 halves without allocating.
 */

/** Storage tier of the blocks an event talks about. Only `device` feeds the primary index. */
export type StorageTier = "device" | "host_pinned" | "disk" | "external";

export const STORAGE_TIERS: readonly StorageTier[] = ["device", "host_pinned", "disk", "external"];

/** Blocks newly cached by a worker rank, as one run that continues `parentHash` (null: from the root). */
export interface StoredData {
  readonly type: "stored";
  /** Engine hash of the block this run continues; null when the run starts at block 0. */
  readonly parentHash: bigint | null;
  /** Position of the first block in the sequence, when the publisher knows it. */
  readonly startPosition?: number | null;
  /** Engine block hashes (opaque ids), one per block. */
  readonly blockHashes: BigUint64Array;
  /** Router local hashes of each block's tokens (`tokens_hash`), same length as `blockHashes`. */
  readonly tokensHashes: BigUint64Array;
}

/** Blocks evicted by a worker rank, by engine block hash. */
export interface RemovedData {
  readonly type: "removed";
  readonly blockHashes: BigUint64Array;
}

/** Everything the worker rank had cached is gone. */
export interface ClearedData {
  readonly type: "cleared";
}

export type KvCacheEventData = StoredData | RemovedData | ClearedData;

/** One KV-cache event of one `(workerId, dpRank)`, numbered by `eventId` (monotonic per worker rank). */
export interface RouterEvent {
  readonly workerId: bigint;
  readonly dpRank: number;
  readonly eventId: bigint;
  readonly storageTier: StorageTier;
  readonly data: KvCacheEventData;
}

/** A routing target: one data-parallel rank of one worker. */
export interface WorkerRank {
  readonly workerId: bigint;
  readonly dpRank: number;
}

/** String key of a worker rank (`"<workerId>/<dpRank>"`, worker id in decimal) for maps and logs. */
export type WorkerRankKey = string;

export function workerRankKey(workerId: bigint, dpRank: number): WorkerRankKey {
  return `${workerId}/${dpRank}`;
}

export function parseWorkerRankKey(key: WorkerRankKey): WorkerRank {
  const slash = key.lastIndexOf("/");
  if (slash <= 0) throw new TypeError(`not a worker rank key: ${JSON.stringify(key)}`);
  return { workerId: BigInt(key.slice(0, slash)), dpRank: Number(key.slice(slash + 1)) };
}

/** Convenience constructors, mostly for tests and tools. */
export const RouterEvents = {
  stored(
    worker: WorkerRank,
    eventId: bigint,
    parentHash: bigint | null,
    blocks: ReadonlyArray<{ blockHash: bigint; tokensHash: bigint }>,
    storageTier: StorageTier = "device",
  ): RouterEvent {
    return {
      workerId: worker.workerId,
      dpRank: worker.dpRank,
      eventId,
      storageTier,
      data: {
        type: "stored",
        parentHash,
        startPosition: null,
        blockHashes: BigUint64Array.from(blocks, (b) => b.blockHash),
        tokensHashes: BigUint64Array.from(blocks, (b) => b.tokensHash),
      },
    };
  },
  removed(
    worker: WorkerRank,
    eventId: bigint,
    blockHashes: readonly bigint[],
    storageTier: StorageTier = "device",
  ): RouterEvent {
    return {
      workerId: worker.workerId,
      dpRank: worker.dpRank,
      eventId,
      storageTier,
      data: { type: "removed", blockHashes: BigUint64Array.from(blockHashes) },
    };
  },
  cleared(worker: WorkerRank, eventId: bigint, storageTier: StorageTier = "device"): RouterEvent {
    return { workerId: worker.workerId, dpRank: worker.dpRank, eventId, storageTier, data: { type: "cleared" } };
  },
};
