export {
  XXH3_SEED,
  chainHash,
  computeBlockHashes,
  computeLocalHash,
  computeSequenceHashes,
  requiredBlocks,
  saltedSeed,
  xxh3Hash,
  type BlockHashOptions,
  type HashSalt,
} from "./hashing.js";
export {
  RouterEvents,
  STORAGE_TIERS,
  parseWorkerRankKey,
  workerRankKey,
  type ClearedData,
  type KvCacheEventData,
  type RemovedData,
  type RouterEvent,
  type StorageTier,
  type StoredData,
  type WorkerRank,
  type WorkerRankKey,
} from "./events.js";
export type {
  ApplyError,
  BlockPosition,
  ApplyErrorKind,
  ApplyOutcome,
  EventGap,
  EventIndex,
  OverlapScores,
  OverlapSource,
} from "./index-api.js";
export { RadixIndex, type RadixIndexOptions } from "./radix-index.js";
export { ApproxIndex, type ApproxIndexOptions } from "./approx-index.js";
export { CombinedOverlap } from "./combined-overlap.js";
export {
  TieredIndex,
  type TieredIndexOptions,
  type TierContinuations,
  type WorkerEventCounts,
} from "./tiered-index.js";
export { LowerTierIndex, type ParentResolver } from "./lower-tier-index.js";
