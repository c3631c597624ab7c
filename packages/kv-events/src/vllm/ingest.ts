import { workerRankKey, type RouterEvent, type WorkerRank, type WorkerRankKey } from "@dynamo/kv-indexer";
import type { LogSink } from "../log.js";
import type { VllmEventBatch } from "./codec.js";
import { TRANSLATION_ISSUES, VllmEventTranslator, type TranslationIssue } from "./translate.js";
import type { ZmqBatchHandler, ZmqBatchInfo, ZmqResetReason } from "../zmq/subscriber.js";

/** Per-publisher quirks. */
export interface VllmPublisherQuirks {
  /** llm-d-inference-sim: `parent_block_hash = 0` means "no parent". */
  readonly zeroParentIsRoot?: boolean;
  /** Cache namespace salt for events without their own `cache_salt`. */
  readonly defaultCacheSalt?: string | null;
  /** The publisher sends `BlockStored` without token ids (lower tiers of vLLM's offloading connector). */
  readonly tokenlessStores?: boolean;
}

export interface VllmEventIngestOptions {
  /** The router's block size. */
  readonly blockSize: number;
  /** Quirks of a worker's publisher (default: none). */
  readonly quirks?: (workerId: bigint) => VllmPublisherQuirks;
  /** Id of each rank's first router event. Default 0. */
  readonly firstEventId?: bigint;
  readonly log?: LogSink;
}

/**
 * Decodes and translates the batches a `ZmqEventSubscriber` delivers into router events, with one
 * `VllmEventTranslator` (and so one event-id sequence) per worker rank; a rank reset becomes a `cleared`
 * event. Every router event goes to `sink` in order.
 */
export class VllmEventIngest implements ZmqBatchHandler {
  private readonly translators = new Map<WorkerRankKey, VllmEventTranslator>();
  /** Workers already reported for sending blocks of another size than the router's. */
  private readonly wrongSizeReported = new Set<bigint>();

  constructor(
    private readonly options: VllmEventIngestOptions,
    private readonly sink: (event: RouterEvent, rank: WorkerRank) => void,
  ) {}

  onBatch(rank: WorkerRank, payload: Uint8Array, _info?: ZmqBatchInfo): void {
    const translator = this.translator(rank);
    for (const event of translator.translatePayload(payload)) this.sink(event, rank);
    this.reportWrongBlockSize(translator);
  }

  /** Translates a batch given as values (in-process delivery, no wire encoding). */
  onDecodedBatch(rank: WorkerRank, batch: VllmEventBatch): void {
    const decoded = { ...batch, unknownEvents: 0, invalidEvents: 0, firstInvalidReason: undefined };
    const translator = this.translator(rank);
    for (const event of translator.translateBatch(decoded)) this.sink(event, rank);
    this.reportWrongBlockSize(translator);
  }

  /** Logs once per worker that its blocks are of another size than the router's (they never match). */
  private reportWrongBlockSize(translator: VllmEventTranslator): void {
    const size = translator.lastWrongBlockSize;
    if (size === undefined || this.wrongSizeReported.has(translator.workerId)) return;
    this.wrongSizeReported.add(translator.workerId);
    (this.options.log ?? console.warn)(
      `worker ${translator.workerId} publishes KV blocks of ${size} tokens but the router uses ${this.options.blockSize} ` +
        `(DYN_KV_CACHE_BLOCK_SIZE / the model card): its blocks are not indexed and it never gets cache credit`,
    );
  }

  /** Issue counts of each worker, summed over its ranks. */
  issuesByWorker(): Map<bigint, Record<TranslationIssue, number>> {
    const out = new Map<bigint, Record<TranslationIssue, number>>();
    for (const t of this.translators.values()) {
      let sums = out.get(t.workerId);
      if (!sums)
        out.set(
          t.workerId,
          (sums = Object.fromEntries(TRANSLATION_ISSUES.map((k) => [k, 0])) as Record<TranslationIssue, number>),
        );
      for (const k of TRANSLATION_ISSUES) sums[k] += t.issues[k];
    }
    return out;
  }

  onReset(rank: WorkerRank, _reason?: ZmqResetReason): void {
    this.sink(this.translator(rank).cleared(), rank);
  }

  /** The translator (event-id sequence, issue counters) of one worker rank, created on first use. */
  translator(rank: WorkerRank): VllmEventTranslator {
    const key = workerRankKey(rank.workerId, rank.dpRank);
    let translator = this.translators.get(key);
    if (!translator) {
      const quirks = this.options.quirks?.(rank.workerId) ?? {};
      translator = new VllmEventTranslator({
        workerId: rank.workerId,
        dpRank: rank.dpRank,
        blockSize: this.options.blockSize,
        zeroParentIsRoot: quirks.zeroParentIsRoot ?? false,
        defaultCacheSalt: quirks.defaultCacheSalt ?? null,
        tokenlessStores: quirks.tokenlessStores ?? false,
        firstEventId: this.options.firstEventId ?? 0n,
        ...(this.options.log ? { log: this.options.log } : {}),
      });
      this.translators.set(key, translator);
    }
    return translator;
  }

  /** Drops the translators of every rank of a worker. */
  forgetWorker(workerId: bigint): void {
    this.wrongSizeReported.delete(workerId);
    for (const [key, t] of this.translators) if (t.workerId === workerId) this.translators.delete(key);
  }

  /** Issue counts summed over all worker ranks. */
  issueTotals(): Record<TranslationIssue, number> {
    const totals = Object.fromEntries(TRANSLATION_ISSUES.map((k) => [k, 0])) as Record<TranslationIssue, number>;
    for (const t of this.translators.values()) for (const k of TRANSLATION_ISSUES) totals[k] += t.issues[k];
    return totals;
  }
}
