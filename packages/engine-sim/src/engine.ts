import { createBlockHasher } from "./block-hash.js";
import type { CachedBlock } from "./block-pool.js";
import { systemClock } from "./clock.js";
import { resolveEngineConfig } from "./config.js";
import { EventBuffer } from "./event-buffer.js";
import { KvCache } from "./kv-cache.js";
import { LoraSlots } from "./lora.js";
import { validateRequest } from "./request-validation.js";
import { Scheduler, type SchedulerCounters, type StepPlan } from "./scheduler.js";
import { Sequence } from "./sequence.js";
import { repeatableSteps } from "./fast-forward.js";
import { TimerQueue } from "./timer-queue.js";
import { kvTransferMs, stepDurationMs } from "./timing.js";
import type {
  Clock,
  EngineConfig,
  EngineLoad,
  EngineOptions,
  EngineRequest,
  EngineStats,
  FinishReason,
  KvEventBatch,
  KvTransferRole,
  RequestResult,
  RequestState,
  TimeMs,
} from "./types.js";

/** Told when an engine's `nextEventTime()` may have moved earlier. Must not call back into the engine synchronously. */
export type WakeListener = (engine: Engine) => void;

/**
 * One simulated vLLM engine (one data-parallel rank): a KV block pool with prefix caching, the vLLM
 * scheduler and the step-time model, on an injected clock. It is passive: requests go in with
 * `addRequest` (arriving at `clock.now()`), and time moves through `runNext()` / `advanceTo(t)`, which
 * a driver calls (`VirtualLoop` for offline simulation, `RealtimeDriver` for a server).
 *
 * A step starts when the engine has work (at the arrival that woke it, or when the previous step
 * ends); its batch is planned and its blocks allocated and cached at the start, its tokens, finishes
 * and KV events are delivered at its end. Token and finish callbacks may add or cancel requests.
 */
export class Engine {
  readonly config: EngineConfig;
  readonly rank: number;
  private readonly kv: KvCache;
  private readonly loras: LoraSlots;
  private readonly scheduler: Scheduler;
  private readonly byId = new Map<string, Sequence>();
  private readonly timers = new TimerQueue();
  private plan: StepPlan | null = null;
  private stepEndAt = Infinity;
  private beginAt = Infinity;
  private wakeListener: WakeListener | null = null;
  /** Inside `runNext`: a callback adding or cancelling a request must not process further events. */
  private processing = false;
  /** Exceptions thrown by callbacks during `runNext`, rethrown once the event is fully processed. */
  private callbackErrors: unknown[] = [];
  private readonly onKvEvents: ((batch: KvEventBatch) => void) | undefined;
  private readonly onCallbackError: ((err: unknown) => void) | undefined;
  private readonly counters = {
    steps: 0,
    busyMs: 0,
    generationTokens: 0,
    finished: 0,
    cancelled: 0,
    transferred: 0,
  };
  private readonly schedulerCounters: SchedulerCounters = {
    preemptions: 0,
    prefixCacheQueries: 0,
    prefixCacheHits: 0,
    promptTokens: 0,
  };
  private readonly defaultRole: KvTransferRole | null;

  constructor(
    options: EngineOptions = {},
    /** Where the engine reads the time (drivers check that they share it). */
    readonly clock: Clock = systemClock,
  ) {
    this.config = resolveEngineConfig(options);
    const c = this.config;
    this.rank = c.dataParallelRank;
    this.onKvEvents = options.onKvEvents;
    this.onCallbackError = options.onCallbackError;
    const events = new EventBuffer(options.onKvEvents !== undefined && c.enablePrefixCaching, c.medium, c.blockSize);
    const hasher = createBlockHasher(c.blockHash, c.blockSize, c.hashSeed);
    this.kv = new KvCache(c.blockSize, c.numGpuBlocks, c.eviction, c.enablePrefixCaching, hasher, events);
    this.loras = new LoraSlots(c.maxLoras);
    this.scheduler = new Scheduler(c, this.kv, this.loras, this.schedulerCounters);
    this.defaultRole =
      c.disaggregationMode === "prefill" ? "send" : c.disaggregationMode === "decode" ? "receive" : null;
  }

  /** Registers the driver told when the engine has new work (one at a time; null detaches). */
  setWakeListener(listener: WakeListener | null): void {
    if (listener !== null && this.wakeListener !== null && this.wakeListener !== listener)
      throw new Error("engine already has a driver");
    this.wakeListener = listener;
  }

  /**
   * Queues a request arriving now. Throws `EngineRequestError` for a request the engine can never serve
   * (empty or too long prompt, bad token ids, `maxTokens` < 1, an id already in use).
   */
  addRequest(request: EngineRequest): void {
    const role = request.kvTransfer === undefined ? this.defaultRole : request.kvTransfer;
    validateRequest(request, role, this.config, this.byId);
    const now = this.clock.now();
    this.advanceTo(now);
    this.settle(now, true);
    const seq = new Sequence(request, role, now, this.config.vocabSize);
    this.byId.set(seq.id, seq);
    this.scheduler.enqueue(seq);
    this.kick(now);
  }

  /**
   * Drops an unfinished request (a client went away): its blocks are released at once (full ones stay
   * cached) and `onFinish` reports `cancelled`. False when the id is unknown or already finished.
   */
  cancel(requestId: string): boolean {
    const seq = this.byId.get(requestId);
    if (seq === undefined) return false;
    const now = this.clock.now();
    this.advanceTo(now);
    if (seq.status === "finished") return false;
    this.settle(now, true);
    this.scheduler.remove(seq);
    this.timers.delete(seq);
    this.kv.free(seq);
    this.counters.cancelled++;
    this.kick(now);
    this.end(seq, "cancelled", now);
    return true;
  }

  /** When the next step begins or ends, or a KV transfer completes; Infinity when there is nothing to do. */
  nextEventTime(): TimeMs {
    return Math.min(this.stepEndAt, this.beginAt, this.timers.next);
  }

  /** Processes the next event (at `nextEventTime()`; the clock should read that time or later). */
  runNext(): void {
    const t = this.nextEventTime();
    if (t === Infinity || this.processing) return;
    this.processing = true;
    try {
      this.process(t);
    } finally {
      this.processing = false;
    }
    const errors = this.callbackErrors;
    if (errors.length === 0) return;
    this.callbackErrors = [];
    throw errors.length === 1 ? errors[0] : new AggregateError(errors, "engine callbacks threw");
  }

  /** Processes every event strictly before `t` (a request added at `t` then joins the step starting at `t`). */
  advanceTo(t: TimeMs): void {
    if (this.processing) return;
    while (this.nextEventTime() < t) this.runNext();
  }

  /**
   * Empties the prefix cache (vLLM's `reset_prefix_cache`) and publishes `AllBlocksCleared`; refused
   * (false) while any block is in use.
   */
  resetPrefixCache(): boolean {
    if (!this.kv.reset()) return false;
    this.flushEvents(this.clock.now());
    return true;
  }

  /** Current load signals. */
  load(): EngineLoad {
    const { waiting, running } = this.scheduler;
    let pending = 0;
    const runningLoras = new Set<string>();
    const waitingLoras = new Set<string>();
    for (const seq of running) {
      if (!seq.prefillDone) pending += seq.numTokens - seq.numComputed;
      if (seq.loraName !== null) runningLoras.add(seq.loraName);
    }
    for (const seq of waiting) {
      if (!seq.kvAllocated) pending += seq.numTokens - seq.numComputed;
      if (seq.loraName !== null) waitingLoras.add(seq.loraName);
    }
    const pool = this.kv.pool;
    return {
      dataParallelRank: this.rank,
      waiting: waiting.length,
      running: running.length,
      totalBlocks: pool.capacity,
      activeBlocks: pool.active,
      cachedBlocks: pool.cachedInactive,
      kvUsage: pool.active / pool.capacity,
      pendingPrefillTokens: pending,
      runningLoras: [...runningLoras],
      waitingLoras: [...waitingLoras],
      maxLoras: this.config.maxLoras,
    };
  }

  /** Counters since the engine started. */
  stats(): EngineStats {
    this.settle(this.clock.now(), false);
    return {
      ...this.counters,
      ...this.schedulerCounters,
      storedBlocks: this.kv.storedBlocks,
      removedBlocks: this.kv.removedBlocks,
      loraLoads: this.loras.loads,
    };
  }

  /** Snapshot of an unfinished request, or undefined. */
  requestState(requestId: string): RequestState | undefined {
    this.settle(this.clock.now(), false);
    return this.byId.get(requestId)?.state();
  }

  /** Requests not finished yet (waiting, transferring or running). */
  get unfinished(): number {
    return this.byId.size;
  }

  /** Every full block in the prefix cache, with its parent and users. */
  cachedBlocks(): IterableIterator<CachedBlock> {
    return this.kv.pool.cachedBlocks();
  }

  /** Adapters resident on the engine, least recently used first. */
  get loadedLoras(): readonly string[] {
    return this.loras.loaded;
  }

  /**
   * Calls a user callback. An exception goes to `onCallbackError` when given; otherwise, while an event
   * is processed, it is rethrown from `runNext` once the event is done (the engine stays consistent).
   */
  private notify<T>(callback: ((value: T) => void) | undefined, value: T): void {
    if (callback === undefined) return;
    if (!this.processing && this.onCallbackError === undefined) return callback(value);
    try {
      callback(value);
    } catch (err) {
      if (this.onCallbackError !== undefined) this.onCallbackError(err);
      else this.callbackErrors.push(err);
    }
  }

  private process(t: TimeMs): void {
    if (this.timers.next <= t) {
      this.fireTimers(t);
    } else if (this.stepEndAt <= t) {
      this.stepEndAt = Infinity;
      this.finishStep(t);
      if (this.plan === null && this.beginAt === Infinity && this.hasWork()) this.beginStep(t);
    } else {
      this.beginAt = Infinity;
      this.beginStep(t);
    }
  }

  private hasWork(): boolean {
    return this.scheduler.running.length > 0 || this.scheduler.waiting.length > 0;
  }

  /** Work arrived or capacity came back: an idle engine starts a step now. */
  private kick(now: TimeMs): void {
    if (this.plan !== null || this.stepEndAt !== Infinity || this.beginAt !== Infinity || !this.hasWork()) return;
    this.beginAt = now;
    this.wakeListener?.(this);
  }

  private beginStep(t: TimeMs): void {
    const plan = this.scheduler.schedule(t);
    for (const seq of plan.transfers) this.timers.add(seq, seq.kvReadyAt);
    if (plan.seqs.length === 0) {
      this.flushEvents(t);
      // Everyone running was preempted: plan again at once (admission was skipped this time).
      if (plan.preempted) this.beginAt = t;
      return;
    }
    const pool = this.kv.pool;
    const c = this.config;
    const stepMs = stepDurationMs(
      {
        prefillTokens: plan.prefillTokens,
        decoding: plan.decoding,
        activeFraction: pool.active / pool.capacity,
        loraLoads: plan.loraLoads,
      },
      c,
    );
    const timer = this.timers.next;
    // A step that changed the cache publishes at its own end: it is never repeated.
    const repeatable = c.fastForward && this.kv.events.pending === 0;
    plan.steps = repeatable ? repeatableSteps(plan, c.blockSize, c.enablePrefixCaching, t, stepMs, timer) : 1;
    plan.stepMs = stepMs;
    plan.startAt = t;
    this.plan = plan;
    let end = t;
    for (let i = 0; i < plan.steps; i++) end += stepMs;
    this.stepEndAt = end;
  }

  /**
   * Delivers the steps of a repeated plan that ended before `now`; with `cut`, the run stops at the end
   * of the step in flight (a request arrived or left: the next step must be planned afresh).
   */
  private settle(now: TimeMs, cut: boolean): void {
    const plan = this.plan;
    if (plan === null || plan.steps <= 1) return;
    let end = plan.startAt + plan.stepMs;
    while (plan.steps > 1 && end < now) {
      this.repeatStep(plan, end);
      plan.steps--;
      plan.startAt = end;
      end += plan.stepMs;
    }
    if (cut && plan.steps > 1) {
      plan.steps = 1;
      this.stepEndAt = end;
      this.wakeListener?.(this);
    }
  }

  /** One step of a repeated plan, ending at `t`: every scheduled request decodes one token. */
  private repeatStep(plan: StepPlan, t: TimeMs): void {
    this.counters.steps++;
    this.counters.busyMs += plan.stepMs;
    for (const seq of plan.seqs) {
      if (seq.status !== "running") continue;
      seq.numComputed++;
      seq.recordToken(seq.nextOutputToken(), t);
      this.counters.generationTokens++;
    }
  }

  private finishStep(t: TimeMs): void {
    const plan = this.plan!;
    this.plan = null;
    let at = plan.startAt;
    for (let i = 1; i < plan.steps; i++) this.repeatStep(plan, (at += plan.stepMs));
    this.counters.steps++;
    this.counters.busyMs += plan.stepMs;
    this.flushEvents(t);
    let ended = false;
    const { seqs, numNew } = plan;
    for (let k = 0; k < seqs.length; k++) {
      const seq = seqs[k]!;
      if (seq.status !== "running") continue;
      seq.numComputed += numNew[k]!;
      if (seq.numComputed < seq.numTokens) continue;
      seq.prefillDone = true;
      const tokenId = seq.nextOutputToken();
      const index = seq.outputs.length;
      seq.recordToken(tokenId, t);
      this.counters.generationTokens++;
      const onToken = seq.request.onToken;
      if (onToken !== undefined) this.notify(onToken, { requestId: seq.id, tokenId, index, timeMs: t });
      if (seq.status !== "running") continue; // cancelled by the callback
      if (seq.role === "send") {
        ended = true;
        this.handOver(seq, t);
      } else if (seq.outputs.length >= seq.maxTokens) {
        ended = true;
        this.kv.free(seq);
        this.counters.finished++;
        this.end(seq, "length", t);
      }
    }
    if (ended) this.scheduler.running = this.scheduler.running.filter((s) => s.status === "running");
  }

  /** `send`: the token is out; the blocks stay held for the transfer delay, then are released. */
  private handOver(seq: Sequence, t: TimeMs): void {
    const c = this.config;
    const transferMs = kvTransferMs(seq.promptLen, c.kvBytesPerToken, c.kvTransferBandwidth, c.speedupRatio);
    const blockIds = seq.blocks.slice();
    this.counters.transferred++;
    this.end(seq, "transferred", t, { transferBlockIds: blockIds, transferMs });
    seq.status = "held";
    this.timers.add(seq, t + transferMs);
  }

  private end(seq: Sequence, reason: FinishReason, t: TimeMs, extra?: Partial<RequestResult>): void {
    seq.status = "finished";
    this.byId.delete(seq.id);
    const result = seq.result(reason, t, this.rank);
    this.notify(seq.request.onFinish, extra ? { ...result, ...extra } : result);
  }

  private fireTimers(t: TimeMs): void {
    this.settle(t, true);
    for (const seq of this.timers.due(t)) {
      if (seq.status !== "held") continue; // a `receive` sequence's KV arrived: the next plan starts it
      this.kv.free(seq);
      seq.status = "finished";
    }
    this.kick(t);
  }

  private flushEvents(t: TimeMs): void {
    const buffer = this.kv.events;
    if (buffer.pending === 0) return;
    this.notify(this.onKvEvents, { ts: t / 1000, events: buffer.take(), dataParallelRank: this.rank });
  }
}
