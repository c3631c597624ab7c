import { computeBlockHashes, type RouterEvent, type StorageTier } from "@dynamo/kv-indexer";
import { EngineBlocks } from "./engine-blocks.js";
import { RateLimitedLog, type LogSink } from "../log.js";
import { decodeVllmEventBatch, type BatchOmissions } from "./batch-steps.js";
import { VllmDecodeError, type DecodedVllmBatch, type VllmBlockStored, type VllmKvEvent } from "./codec.js";

/** Why (part of) a vLLM batch or event was not turned into router events. */
export type TranslationIssue =
  | "malformed_payload" // not a KVEventBatch: the whole message is dropped
  | "invalid_event" // an event with fields of the wrong type: that event is dropped
  | "unknown_event" // an event tag other than BlockStored / BlockRemoved / AllBlocksCleared: skipped
  | "rank_mismatch" // the batch names another data-parallel rank than this translator's: dropped
  | "wrong_block_size" // a stored block whose size differs from the router's: that event stops there
  | "duplicate_hashes" // a stored run repeating a hash (or its parent): ignored
  | "unknown_tokens" // blocks of a BlockStored without token ids that were never stored with them: skipped (counted per block)
  | "remote_locality"; // a map-form event with locality other than LOCAL: ignored

export const TRANSLATION_ISSUES: readonly TranslationIssue[] = [
  "malformed_payload",
  "invalid_event",
  "unknown_event",
  "rank_mismatch",
  "wrong_block_size",
  "duplicate_hashes",
  "unknown_tokens",
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
  /**
   * The publisher sends `BlockStored` without token ids (e.g. vLLM's offloading connector for lower
   * tiers): remember every stored block from the start. Without it, blocks are remembered from the first
   * such event on (that event and blocks stored before it cannot be resolved). Default false.
   */
  readonly tokenlessStores?: boolean;
  /** Receives rate-limited warning lines (default `console.warn`). */
  readonly log?: LogSink;
  /** Minimum interval between two warnings of the same kind. Default 10 s. */
  readonly warnIntervalMs?: number;
}

const TIER_BITS: Record<StorageTier, number> = { device: 1, host_pinned: 2, disk: 4, external: 8 };

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
 * emitted events with consecutive ids. It remembers the router hash of every block held in some tier,
 * so that a `BlockStored` without `token_ids` (blocks already stored with them, announced in another
 * tier) gets its router hashes from there. Never throws on bad input: problems are counted in `issues`
 * and logged (rate-limited) with the worker named.
 */
export class VllmEventTranslator {
  readonly workerId: bigint;
  readonly dpRank: number;
  /** Problems seen so far, by kind. */
  readonly issues: Record<TranslationIssue, number> = Object.fromEntries(
    TRANSLATION_ISSUES.map((k) => [k, 0]),
  ) as Record<TranslationIssue, number>;
  /** `block_size` of the last `BlockStored` refused for its block size (undefined: none so far). */
  lastWrongBlockSize: number | undefined;
  private nextId: bigint;
  /** Blocks held, for stores without token ids: kept from the start with `tokenlessStores`, else from the first such store. */
  private known: EngineBlocks | null;
  private readonly log: RateLimitedLog;
  private readonly label: string;

  constructor(private readonly options: VllmTranslatorOptions) {
    this.workerId = options.workerId;
    this.dpRank = options.dpRank;
    this.nextId = options.firstEventId ?? 0n;
    this.known = options.tokenlessStores ? new EngineBlocks() : null;
    this.log = new RateLimitedLog(options.log, options.warnIntervalMs);
    this.label = `worker ${options.workerId} dp_rank ${options.dpRank}`;
  }

  /** Id the next emitted router event will carry. */
  get nextEventId(): bigint {
    return this.nextId;
  }

  /** Decodes and translates one ZMQ payload. A malformed payload yields no events (counted, logged). */
  translatePayload(payload: Uint8Array): RouterEvent[] {
    const batch = this.decodePayload(payload);
    return batch === null ? [] : this.translateBatch(batch);
  }

  /** Decodes one ZMQ payload; null (counted, logged) when it is malformed. */
  decodePayload(payload: Uint8Array): DecodedVllmBatch | null {
    try {
      return decodeVllmEventBatch(payload);
    } catch (err) {
      if (!(err instanceof VllmDecodeError)) throw err;
      this.reportMalformed(payload.byteLength, err);
      return null;
    }
  }

  /** Counts and logs a payload dropped as malformed. */
  reportMalformed(byteLength: number, err: VllmDecodeError): void {
    this.report("malformed_payload", `dropped a malformed KV-event payload (${byteLength} bytes): ${err.message}`);
  }

  /** Translates one decoded batch into router events (possibly none). */
  translateBatch(batch: DecodedVllmBatch): RouterEvent[] {
    const out: RouterEvent[] = [];
    for (const event of this.acceptBatch(batch)) this.translateEvent(event, out);
    return out;
  }

  /**
   * Counts what the decoder left out of a batch and checks its rank: the events to translate, in order
   * (none when the batch belongs to another rank). Translate them with `translateEvent`, possibly a few
   * at a time.
   */
  acceptBatch(batch: DecodedVllmBatch): readonly VllmKvEvent[] {
    this.reportOmissions(batch);
    return this.acceptsRank(batch.dataParallelRank) ? batch.events : [];
  }

  /** Counts and logs the events a batch left out. */
  reportOmissions(batch: BatchOmissions): void {
    if (batch.unknownEvents > 0)
      this.report("unknown_event", `skipped ${batch.unknownEvents} event(s) of unknown type`, batch.unknownEvents);
    if (batch.invalidEvents > 0) {
      this.report(
        "invalid_event",
        `dropped ${batch.invalidEvents} invalid event(s): ${batch.firstInvalidReason}`,
        batch.invalidEvents,
      );
    }
  }

  /** Whether a batch of this data-parallel rank (null: unsaid) is this translator's; counted when not. */
  acceptsRank(dataParallelRank: number | null): boolean {
    if (dataParallelRank === null || dataParallelRank === this.dpRank) return true;
    this.report("rank_mismatch", `dropped a batch of data_parallel_rank ${dataParallelRank}`);
    return false;
  }

  /** A `cleared` event for this rank with the next id (publisher restart, unrecoverable gap). */
  cleared(): RouterEvent {
    this.known?.clear();
    return this.emit("device", { type: "cleared" });
  }

  /** Blocks whose router hash and parent are remembered (held in at least one tier); 0 while not tracking. */
  get knownBlocks(): number {
    return this.known?.size ?? 0;
  }

  /** Translates one event of an accepted batch, appending its router events (if any) to `out`. */
  translateEvent(event: VllmKvEvent, out: RouterEvent[]): void {
    if (event.type === "AllBlocksCleared") {
      out.push(this.cleared());
      return;
    }
    if (event.locality !== null && event.locality !== undefined && event.locality.toUpperCase() !== "LOCAL") {
      this.report("remote_locality", `ignored a ${event.type} with locality ${event.locality}`);
      return;
    }
    const tier = storageTierFromMedium(event.medium);
    if (event.type === "BlockRemoved") {
      this.known?.remove(event.blockHashes, TIER_BITS[tier]);
      out.push(this.emit(tier, { type: "removed", blockHashes: BigUint64Array.from(event.blockHashes) }));
    } else if (event.tokenIds === null || (event.tokenIds.length === 0 && event.blockHashes.length > 0)) {
      this.translateTokenless(event, tier, out);
    } else {
      const stored = this.translateStored(event, event.tokenIds, tier);
      if (stored) out.push(stored);
    }
  }

  /** The parent to store under (null: from block 0), or undefined when the event must be ignored. */
  private storedParent(event: VllmBlockStored): bigint | null | undefined {
    let parent = event.parentBlockHash;
    if (parent === 0n && this.options.zeroParentIsRoot) parent = null;
    if (hasDuplicate(event.blockHashes, parent)) {
      this.report("duplicate_hashes", `ignored a BlockStored repeating a block hash`);
      return undefined;
    }
    return parent;
  }

  private translateStored(event: VllmBlockStored, tokenIds: readonly number[], tier: StorageTier): RouterEvent | null {
    const bs = this.options.blockSize;
    const n = event.blockHashes.length;
    const parent = this.storedParent(event);
    if (parent === undefined) return null;
    let good = event.blockSize === bs ? Math.min(n, Math.floor(tokenIds.length / bs)) : 0;
    if (tokenIds.length > n * bs) good = 0;
    if (good < n) {
      if (event.blockSize !== bs) this.lastWrongBlockSize = event.blockSize ?? 0;
      this.report(
        "wrong_block_size",
        `BlockStored with block_size ${event.blockSize} and ${tokenIds.length} tokens for ${n} block(s) ` +
          `(router block size ${bs}): indexed ${good} block(s)`,
      );
      if (good === 0) return null;
    }
    const tokens = good * bs === tokenIds.length ? tokenIds : tokenIds.slice(0, good * bs);
    const tokensHashes = computeBlockHashes(tokens, bs, {
      loraName: event.loraName ?? null,
      cacheSalt: event.cacheSalt ?? this.options.defaultCacheSalt ?? null,
    });
    const blockHashes = new BigUint64Array(good);
    for (let i = 0; i < good; i++) blockHashes[i] = event.blockHashes[i]!;
    this.known?.addStored(event.blockHashes, parent, tokensHashes, TIER_BITS[tier]);
    return this.emit(tier, { type: "stored", parentHash: parent, startPosition: null, blockHashes, tokensHashes });
  }

  /**
   * A `BlockStored` without token ids (vLLM's offloading connector sends `token_ids = []`, `block_size = 0`
   * and no parent for the blocks it copies to a lower tier): the blocks are ones the engine stored with
   * their tokens before, so their router hashes and parents come from those stores. Each run of blocks
   * that follow one another becomes one stored event under the run's remembered parent; a block never
   * stored with its tokens (or stored before the translator tracked blocks) is skipped and counted.
   */
  private translateTokenless(event: VllmBlockStored, tier: StorageTier, out: RouterEvent[]): void {
    if (!this.known) {
      this.known = new EngineBlocks(); // from now on every stored block is remembered
      this.log.warn(
        "tracking",
        `kv-events: ${this.label}: BlockStored without token ids seen: remembering stored blocks from now on`,
      );
    }
    if (hasDuplicate(event.blockHashes, null)) {
      this.report("duplicate_hashes", `ignored a BlockStored repeating a block hash`);
      return;
    }
    const bit = TIER_BITS[tier];
    let unknown = 0;
    let firstUnknown: bigint | undefined;
    let runParent: bigint | null = null;
    let runBlocks: bigint[] = [];
    let runLocals: bigint[] = [];
    const flush = () => {
      if (runBlocks.length === 0) return;
      const data = {
        type: "stored" as const,
        parentHash: runParent,
        startPosition: null,
        blockHashes: BigUint64Array.from(runBlocks),
        tokensHashes: BigUint64Array.from(runLocals),
      };
      out.push(this.emit(tier, data));
      runBlocks = [];
      runLocals = [];
    };
    for (const hash of event.blockHashes) {
      const entry = this.known.find(hash);
      if (entry < 0) {
        unknown++;
        firstUnknown ??= hash;
        flush();
        continue;
      }
      this.known.markTier(entry, bit);
      const parent = this.known.parent(entry);
      if (runBlocks.length === 0 || runBlocks.at(-1) !== parent) {
        flush();
        runParent = parent;
      }
      runBlocks.push(hash);
      runLocals.push(this.known.localHash(entry));
    }
    flush();
    if (unknown > 0) {
      this.report(
        "unknown_tokens",
        `BlockStored without token ids: ${unknown} of ${event.blockHashes.length} block(s) (first ${firstUnknown}) were never stored with their tokens ` +
          `since blocks are remembered, so their router hashes are unknown: skipped`,
        unknown,
      );
    }
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
