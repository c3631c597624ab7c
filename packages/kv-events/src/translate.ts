import { computeBlockHashes, type RouterEvent, type StorageTier } from "@dynamo/kv-indexer";
import { RateLimitedLog, type LogSink } from "./log.js";
import { decodeVllmEventBatch, VllmDecodeError, type DecodedVllmBatch, type VllmBlockStored, type VllmKvEvent } from "./vllm-codec.js";

/** Why (part of) a vLLM batch or event was not turned into router events. */
export type TranslationIssue =
  | "malformed_payload" // not a KVEventBatch: the whole message is dropped
  | "invalid_event" // an event with fields of the wrong type: that event is dropped
  | "unknown_event" // an event tag other than BlockStored / BlockRemoved / AllBlocksCleared: skipped
  | "rank_mismatch" // the batch names another data-parallel rank than this translator's: dropped
  | "wrong_block_size" // a stored block whose size differs from the router's: that event stops there
  | "duplicate_hashes" // a stored run repeating a hash (or its parent): ignored
  | "remote_locality"; // a map-form event with locality other than LOCAL: ignored

export const TRANSLATION_ISSUES: readonly TranslationIssue[] = [
  "malformed_payload",
  "invalid_event",
  "unknown_event",
  "rank_mismatch",
  "wrong_block_size",
  "duplicate_hashes",
  "remote_locality",
];

export interface VllmTranslatorOptions {
  readonly workerId: bigint;
  readonly dpRank: number;
  /** The router's block size; stored blocks of any other size are not indexed. */
  readonly blockSize: number;
  /** Treat `parent_block_hash = 0` as "no parent" (llm-d-inference-sim's legacy arrays). Default false. */
  readonly zeroParentIsRoot?: boolean;
  /** Cache namespace salt for events that carry no `cache_salt` of their own. */
  readonly defaultCacheSalt?: string | null;
  /** Id of the first router event emitted. Default 0. */
  readonly firstEventId?: bigint;
  /** Receives rate-limited warning lines (default `console.warn`). */
  readonly log?: LogSink;
  /** Minimum interval between two warnings of the same kind. Default 10 s. */
  readonly warnIntervalMs?: number;
}

/** Storage tier of a vLLM `medium` (`StorageTier::from_kv_medium`); unknown media count as external. */
export function storageTierFromMedium(medium: string | null | undefined): StorageTier {
  if (medium === null || medium === undefined) return "device";
  switch (medium.toUpperCase()) {
    case "GPU":
    case "DEVICE":
      return "device";
    case "CPU":
    case "CPU_PINNED":
    case "CPU_TIER1":
      return "host_pinned";
    case "CPU_TIER2":
    case "DISK":
    case "NVME":
    case "STORAGE":
      return "disk";
    default:
      return "external";
  }
}

/**
 * Turns the vLLM event stream of one `(worker, DP rank)` into router events: recomputes every stored
 * block's router hash from its tokens (salted with the LoRA name and cache salt), keeps engine hashes as
 * opaque ids (the index resolves removals and parents through its per-rank table), and numbers the
 * emitted events with consecutive ids. Never throws on bad input: problems are counted in `issues` and
 * logged (rate-limited) with the worker named.
 */
export class VllmEventTranslator {
  readonly workerId: bigint;
  readonly dpRank: number;
  /** Problems seen so far, by kind. */
  readonly issues: Record<TranslationIssue, number> = Object.fromEntries(TRANSLATION_ISSUES.map((k) => [k, 0])) as Record<
    TranslationIssue,
    number
  >;
  private nextId: bigint;
  private readonly log: RateLimitedLog;
  private readonly label: string;

  constructor(private readonly options: VllmTranslatorOptions) {
    this.workerId = options.workerId;
    this.dpRank = options.dpRank;
    this.nextId = options.firstEventId ?? 0n;
    this.log = new RateLimitedLog(options.log, options.warnIntervalMs);
    this.label = `worker ${options.workerId} dp_rank ${options.dpRank}`;
  }

  /** Id the next emitted router event will carry. */
  get nextEventId(): bigint {
    return this.nextId;
  }

  /** Decodes and translates one ZMQ payload. A malformed payload yields no events (counted, logged). */
  translatePayload(payload: Uint8Array): RouterEvent[] {
    let batch: DecodedVllmBatch;
    try {
      batch = decodeVllmEventBatch(payload);
    } catch (err) {
      if (!(err instanceof VllmDecodeError)) throw err;
      this.report("malformed_payload", `dropped a malformed KV-event payload (${payload.byteLength} bytes): ${err.message}`);
      return [];
    }
    return this.translateBatch(batch);
  }

  /** Translates one decoded batch into router events (possibly none). */
  translateBatch(batch: DecodedVllmBatch): RouterEvent[] {
    if (batch.unknownEvents > 0) this.report("unknown_event", `skipped ${batch.unknownEvents} event(s) of unknown type`, batch.unknownEvents);
    if (batch.invalidEvents > 0) {
      this.report("invalid_event", `dropped ${batch.invalidEvents} invalid event(s): ${batch.firstInvalidReason}`, batch.invalidEvents);
    }
    if (batch.dataParallelRank !== null && batch.dataParallelRank !== this.dpRank) {
      this.report("rank_mismatch", `dropped a batch of data_parallel_rank ${batch.dataParallelRank}`);
      return [];
    }
    const out: RouterEvent[] = [];
    for (const event of batch.events) {
      const translated = this.translateEvent(event);
      if (translated) out.push(translated);
    }
    return out;
  }

  /** A `cleared` event for this rank with the next id (publisher restart, unrecoverable gap). */
  cleared(): RouterEvent {
    return this.emit("device", { type: "cleared" });
  }

  private translateEvent(event: VllmKvEvent): RouterEvent | null {
    if (event.type === "AllBlocksCleared") return this.cleared();
    if (event.locality !== null && event.locality !== undefined && event.locality.toUpperCase() !== "LOCAL") {
      this.report("remote_locality", `ignored a ${event.type} with locality ${event.locality}`);
      return null;
    }
    const tier = storageTierFromMedium(event.medium);
    if (event.type === "BlockRemoved") {
      return this.emit(tier, { type: "removed", blockHashes: BigUint64Array.from(event.blockHashes) });
    }
    return this.translateStored(event, tier);
  }

  private translateStored(event: VllmBlockStored, tier: StorageTier): RouterEvent | null {
    const bs = this.options.blockSize;
    const n = event.blockHashes.length;
    let parent = event.parentBlockHash;
    if (parent === 0n && this.options.zeroParentIsRoot) parent = null;
    if (hasDuplicate(event.blockHashes, parent)) {
      this.report("duplicate_hashes", `ignored a BlockStored repeating a block hash`);
      return null;
    }
    let good = event.blockSize === bs ? Math.min(n, Math.floor(event.tokenIds.length / bs)) : 0;
    if (event.tokenIds.length > n * bs) good = 0;
    if (good < n) {
      this.report(
        "wrong_block_size",
        `BlockStored with block_size ${event.blockSize} and ${event.tokenIds.length} tokens for ${n} block(s) ` +
          `(router block size ${bs}): indexed ${good} block(s)`,
      );
      if (good === 0) return null;
    }
    const tokens = good * bs === event.tokenIds.length ? event.tokenIds : event.tokenIds.slice(0, good * bs);
    const tokensHashes = computeBlockHashes(tokens, bs, {
      loraName: event.loraName ?? null,
      cacheSalt: event.cacheSalt ?? this.options.defaultCacheSalt ?? null,
    });
    const blockHashes = new BigUint64Array(good);
    for (let i = 0; i < good; i++) blockHashes[i] = event.blockHashes[i]!;
    return this.emit(tier, { type: "stored", parentHash: parent, startPosition: null, blockHashes, tokensHashes });
  }

  private emit(storageTier: StorageTier, data: RouterEvent["data"]): RouterEvent {
    return { workerId: this.workerId, dpRank: this.dpRank, eventId: this.nextId++, storageTier, data };
  }

  private report(issue: TranslationIssue, message: string, count = 1): void {
    this.issues[issue] += count;
    this.log.warn(issue, `kv-events: ${this.label}: ${message}`);
  }
}

function hasDuplicate(hashes: readonly bigint[], parent: bigint | null): boolean {
  if (hashes.length < 8) {
    for (let i = 0; i < hashes.length; i++) {
      if (hashes[i] === parent) return true;
      for (let j = i + 1; j < hashes.length; j++) if (hashes[i] === hashes[j]) return true;
    }
    return false;
  }
  const seen = new Set(hashes);
  return seen.size !== hashes.length || (parent !== null && seen.has(parent));
}
