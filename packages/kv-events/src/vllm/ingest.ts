import { workerRankKey, type RouterEvent, type WorkerRank, type WorkerRankKey } from "@dynamo/kv-indexer";
import type { LogSink } from "../log.js";
import { readVllmEventBatch, type BatchOmissions, type BatchStep } from "./batch-steps.js";
import { VllmDecodeError, type VllmEventBatch, type VllmKvEvent } from "./codec.js";
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
  /** Called for each `BlockStored` naming a LoRA adapter (the worker holds that adapter), before its events. */
  readonly onAdapter?: (workerId: bigint, loraName: string) => void;
  /** Id of each rank's first router event. Default 0. */
  readonly firstEventId?: bigint;
  readonly log?: LogSink;
}

/** Longest stretch of ingest work (decoding, translating, applying) run before yielding to the event loop. */
export const INGEST_SLICE_MS = 5;

/** One unit of queued ingest work: a payload, a decoded batch or a rank reset, with its progress. */
interface IngestJob {
  readonly translator: VllmEventTranslator;
  readonly rank: WorkerRank;
  payload?: Uint8Array;
  batch?: VllmEventBatch;
  /** The payload's reading, once started. */
  reading?: Generator<BatchStep, BatchOmissions, void>;
  readonly reset?: boolean;
  /** Events of the batch once accepted, and how many were translated so far. */
  events?: readonly VllmKvEvent[];
  next: number;
  /** Its worker was forgotten while it ran: nothing more of it is applied. */
  cancelled?: boolean;
}

/**
 * Decodes and translates the batches a `ZmqEventSubscriber` delivers into router events, with one
 * `VllmEventTranslator` (and so one event-id sequence) per worker rank; a rank reset becomes a `cleared`
 * event. Every router event goes to `sink` in arrival order. Work runs in slices of at most
 * `INGEST_SLICE_MS` (a batch, at most `MAX_EVENTS_PER_BATCH` events, is checked, then decoded and
 * translated one event at a time), yielding to the event loop between slices, so a burst of large or
 * hostile batches cannot stall the process; while nothing is queued, a batch that fits in one slice is
 * applied before `onBatch` returns, and `onDecodedBatch` (in-process values) applies its whole batch. `idle()` resolves once everything received has been applied.
 */
export class VllmEventIngest implements ZmqBatchHandler {
  private readonly translators = new Map<WorkerRankKey, VllmEventTranslator>();
  /** Workers already reported for sending blocks of another size than the router's. */
  private readonly wrongSizeReported = new Set<bigint>();
  private readonly queue: IngestJob[] = [];
  private draining = false;
  private scheduled = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly options: VllmEventIngestOptions,
    private readonly sink: (event: RouterEvent, rank: WorkerRank) => void,
  ) {}

  onBatch(rank: WorkerRank, payload: Uint8Array, _info?: ZmqBatchInfo): void {
    this.enqueue({ translator: this.translator(rank), rank, payload, next: 0 });
  }

  /** Translates a batch given as values (in-process delivery, no wire encoding). */
  onDecodedBatch(rank: WorkerRank, batch: VllmEventBatch): void {
    const job: IngestJob = { translator: this.translator(rank), rank, batch, next: 0 };
    if (this.queue.length > 0 || this.draining) {
      this.enqueue(job);
      return;
    }
    // Values handed over in-process (a simulator's engines) apply whole before this returns, however
    // large: their caller routes on them next, and a decision must not depend on the wall clock.
    this.step(job, Number.POSITIVE_INFINITY);
  }

  onReset(rank: WorkerRank, _reason?: ZmqResetReason): void {
    this.enqueue({ translator: this.translator(rank), rank, reset: true, next: 0 });
  }

  /** Batches and resets received but not yet fully applied. */
  get queued(): number {
    return this.queue.length;
  }

  /** Resolves once every batch received so far has been applied. */
  idle(): Promise<void> {
    if (this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private enqueue(job: IngestJob): void {
    this.queue.push(job);
    if (!this.draining && !this.scheduled) this.drain();
  }

  /** Runs queued work for one slice, then yields (setImmediate) if work is left. */
  private drain(): void {
    this.scheduled = false;
    this.draining = true;
    const started = performance.now();
    try {
      while (this.queue.length > 0 && performance.now() - started < INGEST_SLICE_MS) {
        if (this.step(this.queue[0]!, started)) this.queue.shift();
      }
    } finally {
      this.draining = false;
      if (this.queue.length > 0) {
        this.scheduled = true;
        setImmediate(() => this.drain());
      }
    }
    if (this.queue.length === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  /** Advances one job within the slice started at `started`; true when it is finished. */
  private step(job: IngestJob, started: number): boolean {
    const { translator, rank } = job;
    if (job.cancelled) return true;
    if (job.reset) {
      this.sink(translator.cleared(), rank);
      return true;
    }
    if (job.payload !== undefined) return this.readPayload(job, started);
    if (job.events === undefined) {
      job.events = translator.acceptBatch({ ...job.batch!, unknownEvents: 0, invalidEvents: 0 });
      job.batch = undefined;
    }
    const out: RouterEvent[] = [];
    while (job.next < job.events.length && !job.cancelled) {
      this.translate(translator, job.events[job.next++]!, out);
      for (const event of out) this.sink(event, rank);
      out.length = 0;
      if (performance.now() - started >= INGEST_SLICE_MS) break;
    }
    if (job.next < job.events.length && !job.cancelled) return false;
    this.reportWrongBlockSize(translator);
    return true;
  }

  /** Reads and translates a payload one event at a time within the slice; true when it is finished. */
  private readPayload(job: IngestJob, started: number): boolean {
    const { translator, rank } = job;
    const payload = job.payload!;
    job.reading ??= readVllmEventBatch(payload);
    const out: RouterEvent[] = [];
    try {
      for (;;) {
        const step = job.reading.next();
        if (step.done) {
          translator.reportOmissions(step.value);
          break;
        }
        const value = step.value;
        if (job.cancelled) return true;
        if (value.kind === "frame" && !translator.acceptsRank(value.dataParallelRank)) break;
        if (value.kind === "event") {
          this.translate(translator, value.event, out);
          for (const event of out) this.sink(event, rank);
          out.length = 0;
        }
        if (performance.now() - started >= INGEST_SLICE_MS) return false;
      }
    } catch (err) {
      if (!(err instanceof VllmDecodeError)) throw err;
      translator.reportMalformed(payload.byteLength, err);
    }
    job.payload = job.reading = undefined;
    this.reportWrongBlockSize(translator);
    return true;
  }

  private translate(translator: VllmEventTranslator, event: VllmKvEvent, out: RouterEvent[]): void {
    if (event.type === "BlockStored" && event.loraName) this.options.onAdapter?.(translator.workerId, event.loraName);
    translator.translateEvent(event, out);
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
    // Queued work of the worker is dropped (the job at the head may be mid-batch: it stops there).
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const job = this.queue[i]!;
      if (job.rank.workerId !== workerId) continue;
      if (i === 0 && this.draining) job.cancelled = true;
      else this.queue.splice(i, 1);
    }
    for (const [key, t] of this.translators) if (t.workerId === workerId) this.translators.delete(key);
  }

  /** Issue counts summed over all worker ranks. */
  issueTotals(): Record<TranslationIssue, number> {
    const totals = Object.fromEntries(TRANSLATION_ISSUES.map((k) => [k, 0])) as Record<TranslationIssue, number>;
    for (const t of this.translators.values()) for (const k of TRANSLATION_ISSUES) totals[k] += t.issues[k];
    return totals;
  }
}
