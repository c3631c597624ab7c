import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import {
  ApproxIndex,
  CombinedOverlap,
  TieredIndex,
  computeBlockHashes,
  computeSequenceHashes,
  requiredBlocks,
  xxh3Hash,
  workerRankKey,
  type ApplyError,
  type ApplyOutcome,
  type OverlapSource,
  type RouterEvent,
  type WorkerRank,
} from "@dynamo/kv-indexer";
import {
  DisaggPlanner,
  WorkerPool,
  createPicker,
  type Plan,
  type PlanRequest,
  type SequenceChange,
  type TierOverlaps,
} from "@dynamo/scheduling";
import { resolveSettings, settingsFromEnv, type KvRouterSettings } from "./config.js";
import { explainOf, rankOf, withLazyExplain } from "./explain.js";
import { auditOf, type RankLoadDelta } from "./decision-audit.js";
import { applyReplicaChange, replicaEventOf } from "./replica-sync.js";
import { RouterQueue, type QueueOutcome } from "./router-queue.js";
import { LoraAdapters } from "./lora-adapters.js";
import { SessionAffinity } from "./session-affinity.js";
import { RouterConfigError, type Environment } from "./settings-table.js";
import type {
  ActiveSequenceEvent,
  KvRouterCounters,
  KvRouterHooks,
  KvRouterOptions,
  RouteDecision,
  RouteRejectReason,
  RouteRejection,
  RouteRequest,
  RouteResult,
  WorkerRegistration,
} from "./types.js";

/**
 * The keyed tracking hash's chain start: XXH3-64 (seed 1337) of a 32-byte key file. Every replica that
 * reads the same file chains the same tracking hashes. Throws `RouterConfigError` naming the variable.
 */
function readTrackingKey(path: string): bigint {
  let key: Buffer;
  try {
    key = readFileSync(path);
  } catch (error) {
    throw new RouterConfigError([`DYN_ROUTER_TRACKING_KEY_FILE: cannot read ${path}: ${(error as Error).message}`]);
  }
  if (key.length !== 32)
    throw new RouterConfigError([
      `DYN_ROUTER_TRACKING_KEY_FILE: ${path} holds ${key.length} bytes; expected exactly 32`,
    ]);
  return xxh3Hash(key);
}

interface Booking {
  readonly disaggregated: boolean;
}

/** Why a request's overrides are out of range, or undefined when they are fine. */
function invalidOverride(o: RouteRequest["overrides"]): string | undefined {
  if (!o) return undefined;
  for (const [name, value] of Object.entries(o)) {
    if (value !== undefined && !(typeof value === "number" && Number.isFinite(value) && value >= 0)) {
      return `overrides.${name} must be a finite number ≥ 0, got ${String(value)}`;
    }
  }
  return undefined;
}

/**
 * KV-aware router: prefix indexes fed by KV events (or approximate mode), load bookkeeping, Dynamo's
 * cost function and disaggregated planning behind one synchronous `route()`, which selects and books
 * in the same step.
 */
export class KvRouter {
  readonly settings: Readonly<KvRouterSettings>;
  readonly counters: KvRouterCounters = {
    routes: 0,
    aggregated: 0,
    disaggregated: 0,
    fallbacks: 0,
    overloaded: 0,
    rejected: 0,
    eventsApplied: 0,
    eventsIgnored: 0,
    bookingsDropped: 0,
    queued: 0,
    queueFull: 0,
    queueTimeouts: 0,
  };
  /**
   * The KV index fed by events, one `RadixIndex` per storage tier (absent in approximate mode or with
   * overlap credit 0). Event subscribers apply to it directly; `applyEvent` does the same.
   */
  readonly index: TieredIndex | undefined;
  private readonly approx: ApproxIndex | undefined;
  private readonly overlapSource: OverlapSource | undefined;
  private readonly planner: DisaggPlanner;
  private readonly bookings = new Map<string, Booking>();
  private readonly registered = new Set<bigint>();
  /** LoRA adapters each worker holds (from discovery, its KV events, and the adapter requests sent to it). */
  private readonly adapters: LoraAdapters;
  private warnedRequestWeight = false;
  private readonly trackingKey: bigint | undefined;
  private readonly sessions: SessionAffinity | undefined;
  private readonly hooks: KvRouterHooks;
  /** Random id of this router, carried by its replica-sync events. */
  readonly routerId: bigint = randomBytes(8).readBigUInt64LE();
  private applyingReplicaEvent = false;
  private bookedSinceAudit = 0;
  /** Requests waiting for load to free (`DYN_ROUTER_QUEUE_THRESHOLD`); absent when the queue is off. */
  private readonly queue: RouterQueue<RouteRequest> | undefined;
  private nextBooking = 1;
  private isReady: boolean;

  /** Configuration from `DYN_*` variables (see README); `options` override the environment. */
  static fromEnv(env: Environment = process.env, options: KvRouterOptions = {}): KvRouter {
    const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
    return new KvRouter({ ...settingsFromEnv(env), ...given });
  }

  constructor(options: KvRouterOptions = {}) {
    const { rng, now, picker, onWarning, onError, onGap, onActiveSequenceEvent, onDecisionAudit, ...settings } =
      options;
    this.hooks = { rng, now, picker, onWarning, onError, onGap, onActiveSequenceEvent, onDecisionAudit };
    const st = resolveSettings(settings, onWarning);
    this.settings = Object.freeze(st);
    const indexOn = st.overlapScoreCredit > 0;
    const reportApplyError = (e: ApplyError) =>
      onError?.(`KV event ${e.eventId} of ${e.workerKey}: ${e.kind}: ${e.detail}`);
    if (indexOn && st.useKvEvents) {
      this.index = new TieredIndex({ onError: reportApplyError, onGap });
      this.overlapSource = this.index.device;
      if (st.predictedTtlSecs !== undefined) {
        this.approx = new ApproxIndex({ ttlMs: st.predictedTtlSecs * 1000, maxEntries: st.maxApproxEntries, now });
        this.overlapSource = new CombinedOverlap(this.index.device, this.approx);
      }
    } else if (indexOn) {
      this.approx = new ApproxIndex({ ttlMs: st.ttlSecs * 1000, maxEntries: st.maxApproxEntries, now });
      this.overlapSource = this.approx;
    }
    if (st.trackingHash === "keyed-xxh3-v1") this.trackingKey = readTrackingKey(st.trackingKeyFile!);
    const pool = (prefill: boolean) =>
      new WorkerPool({
        blockSize: st.blockSize,
        cost: {
          overlapScoreCredit: st.overlapScoreCredit,
          overlapScoreCreditDecay: st.overlapScoreCreditDecay,
          prefillLoadScale: st.prefillLoadScale,
          hostCacheHitWeight: st.hostCacheHitWeight,
          diskCacheHitWeight: st.diskCacheHitWeight,
          decodeActiveRequestWeight: st.decodeActiveRequestWeight,
        },
        temperature: st.temperature,
        tieBand: st.replicaSync ? st.replicaTieBand : 0,
        busy: {
          busyThreshold: st.busyThreshold,
          activeDecodeBlocksThreshold: st.activeDecodeBlocksThreshold,
          activePrefillTokensThreshold: st.activePrefillTokensThreshold,
          activePrefillTokensThresholdFrac: st.activePrefillTokensThresholdFrac,
        },
        picker:
          typeof picker === "function" ? picker() : createPicker(picker ?? (st.mode === "direct" ? "kv" : st.mode)),
        trackActiveBlocks: prefill ? false : st.trackActiveBlocks,
        trackPrefillTokens: st.trackPrefillTokens,
        assumeKvReuse: st.assumeKvReuse,
        trackOutputBlocks: st.trackOutputBlocks,
        activeSequenceStride: st.activeSequenceStride,
        activeRequestExpirySecs: st.activeRequestExpirySecs,
        rng,
        now,
        onError,
        onExpire: (ids) => this.dropBookings(ids),
        onChange:
          st.replicaSync && onActiveSequenceEvent
            ? (change) => this.publish(prefill ? "prefill" : "decode", change)
            : undefined,
      });
    this.planner = new DisaggPlanner({ prefill: pool(true), decode: pool(false), enforceDisagg: st.enforceDisagg });
    this.adapters = new LoraAdapters(st.loraMaxPerWorker);
    this.isReady = st.minInitialWorkers === 0;
    if (st.queueThreshold !== undefined)
      this.queue = new RouterQueue(st.queuePolicy, st.queueMaxDepth, st.queueTimeoutSecs * 1000, now);
    if (st.sessionAffinityTtlSecs !== undefined)
      this.sessions = new SessionAffinity(st.sessionAffinityTtlSecs * 1000, now ?? Date.now);
  }

  /** Registers a worker (or updates its ranks / capacity). */
  addWorker(worker: WorkerRegistration): void {
    const role = worker.role ?? "decode";
    const { prefill, decode } = this.planner;
    for (const [pool, member] of [
      [prefill, role !== "decode"],
      [decode, role !== "prefill"],
    ] as const) {
      if (member) pool.addWorker(worker);
      else this.dropBookings(pool.removeWorker(worker.workerId));
    }
    this.registered.add(worker.workerId);
    if (!this.isReady && this.registered.size >= this.settings.minInitialWorkers) this.isReady = true;
    this.releaseQueued();
  }

  /**
   * The worker holds LoRA adapter `name` now (e.g. its KV events carry blocks of it); the least recently
   * seen of its adapters beyond `DYN_ROUTER_LORA_MAX_PER_WORKER` count as unloaded.
   */
  noteAdapter(workerId: bigint, name: string): void {
    if (name !== "") this.adapters.seen(workerId, name);
  }

  /** The worker holds no LoRA adapter any more (its cache was reset or it restarted). */
  forgetAdapters(workerId: bigint): void {
    this.adapters.forget(workerId);
  }

  /** LoRA adapters the worker is known to hold, least recently seen first. */
  adaptersOf(workerId: bigint): readonly string[] {
    return this.adapters.adaptersOf(workerId);
  }

  /** Forgets a worker: its ranks, its cached blocks in every index, its bookings. */
  removeWorker(workerId: bigint): void {
    this.registered.delete(workerId);
    this.adapters.forget(workerId);
    this.dropBookings(this.planner.prefill.removeWorker(workerId));
    this.dropBookings(this.planner.decode.removeWorker(workerId));
    this.index?.removeWorker(workerId);
    this.approx?.removeWorker(workerId);
    this.releaseQueued();
  }

  private dropBookings(ids: readonly string[]): void {
    for (const id of ids) {
      if (this.bookings.delete(id)) {
        this.counters.bookingsDropped++;
        this.planner.prefill.sequences.free(id);
        this.planner.decode.sequences.free(id);
      }
    }
  }

  /** Feeds one KV event into the index (`index.apply`), counting it; `"ignored"` when there is no index. */
  applyEvent(event: RouterEvent): ApplyOutcome | "ignored" {
    if (!this.index) {
      this.counters.eventsIgnored++;
      return "ignored";
    }
    this.counters.eventsApplied++;
    return this.index.apply(event);
  }

  /**
   * `route` behind the router queue (`DYN_ROUTER_QUEUE_THRESHOLD`): while every candidate worker has
   * more prompt tokens in prefill than `threshold · maxNumBatchedTokens` (or others are already
   * waiting), the request waits, ordered by `DYN_ROUTER_QUEUE_POLICY`, and is routed when load frees.
   * A full queue (`DYN_ROUTER_QUEUE_MAX_DEPTH`) or a wait past `DYN_ROUTER_QUEUE_TIMEOUT_SECS` gives a
   * `queue_overloaded` rejection. With the queue off (or `queryOnly`) this is `route`.
   */
  routeQueued(request: RouteRequest, signal?: AbortSignal): Promise<RouteResult> {
    const queue = this.queue;
    // The allowed set is read more than once here: a one-shot iterable becomes a set.
    if (queue && request.allowedWorkers && !(request.allowedWorkers instanceof Set))
      request = { ...request, allowedWorkers: new Set(request.allowedWorkers) };
    if (!queue || request.queryOnly || (queue.depth === 0 && !this.saturated(request)))
      return Promise.resolve(this.route(request));
    return new Promise((resolve) => {
      const isl = request.isl ?? request.tokens?.length ?? (request.localHashes?.length ?? 0) * this.settings.blockSize;
      const settle = (outcome: QueueOutcome<RouteRequest>) => {
        if (outcome.kind === "released") return resolve(this.route(outcome.item));
        if (outcome.kind === "cancelled")
          return resolve(this.reject("queue_overloaded", "cancelled while waiting in the router queue"));
        this.counters.queueTimeouts++;
        resolve(
          this.reject(
            "queue_overloaded",
            `every worker stayed over the queue threshold for ${Math.round(outcome.waitedMs / 100) / 10} s (DYN_ROUTER_QUEUE_TIMEOUT_SECS=${this.settings.queueTimeoutSecs}); retry later`,
          ),
        );
      };
      if (!queue.push(request, { priority: request.priority ?? 0, isl }, settle, signal)) {
        this.counters.queueFull++;
        resolve(
          this.reject(
            "queue_overloaded",
            `router queue full: ${queue.depth} requests already waiting for every worker to drop below the queue threshold (DYN_ROUTER_QUEUE_MAX_DEPTH=${queue.maxDepth}); retry later`,
          ),
        );
        return;
      }
      this.counters.queued++;
    });
  }

  /** Requests waiting in the router queue. */
  get queueDepth(): number {
    return this.queue?.depth ?? 0;
  }

  /**
   * Every candidate rank of the request has more prompt tokens in prefill than the queue threshold
   * allows (ranks whose `maxNumBatchedTokens` is unknown never count as saturated).
   */
  private saturated(request: RouteRequest): boolean {
    const threshold = this.settings.queueThreshold;
    if (threshold === undefined) return false;
    const pool = this.planner.prefill.workerCount > 0 ? this.planner.prefill : this.planner.decode;
    const allowed = request.allowedWorkers ? new Set(request.allowedWorkers) : undefined;
    const pinned = request.pinned;
    let candidates = 0;
    for (const rank of pool.ranks()) {
      if (allowed && !allowed.has(rank.workerId)) continue;
      if (pinned && pinned.workerId !== rank.workerId) continue;
      const capacity = rank.maxNumBatchedTokens;
      const load = pool.sequences.load(rank.key);
      if (capacity === undefined || !load || load.activePrefillTokens <= threshold * capacity) return false;
      candidates++;
    }
    return candidates > 0;
  }

  /** Routes queued requests, best first, while their candidates have room. */
  private releaseQueued(): void {
    this.queue?.releaseWhile((request) => !this.saturated(request));
  }

  /** Selects and (unless query-only) books in one synchronous step. */
  route(request: RouteRequest): RouteResult {
    const st = this.settings;
    if (!this.isReady)
      return this.reject("not_ready", `waiting for ${st.minInitialWorkers} workers (DYN_ROUTER_MIN_INITIAL_WORKERS)`);
    if (st.mode === "direct" && !request.pinned)
      return this.reject("invalid_request", "direct mode needs a pinned worker");
    const local =
      request.localHashes ??
      (request.tokens
        ? computeBlockHashes(request.tokens, st.blockSize, { loraName: request.loraName, cacheSalt: request.cacheSalt })
        : undefined);
    if (!local) return this.reject("invalid_request", "request carries neither tokens nor localHashes");
    const isl = request.isl ?? request.tokens?.length ?? local.length * st.blockSize;
    if (!(Number.isFinite(isl) && isl >= 0))
      return this.reject("invalid_request", `isl must be a finite number ≥ 0, got ${isl}`);
    const osl = request.expectedOutputTokens;
    if (osl !== undefined && !(Number.isFinite(osl) && osl >= 0))
      return this.reject("invalid_request", `expectedOutputTokens must be a finite number ≥ 0, got ${osl}`);
    const badOverride = invalidOverride(request.overrides);
    if (badOverride) return this.reject("invalid_request", badOverride);
    const requestId = request.requestId ?? `b${this.nextBooking++}`;
    if (this.bookings.has(requestId))
      return this.reject("duplicate_request", `request id ${requestId} is already booked`);

    let allowedWorkers = request.allowedWorkers ? new Set(request.allowedWorkers) : undefined;
    let extraCost: Map<bigint, number> | undefined;
    const lora = request.loraName;
    if (lora && !request.pinned) {
      const workers =
        allowedWorkers ?? [...this.planner.decode.ranks(), ...this.planner.prefill.ranks()].map((r) => r.workerId);
      const penalty = st.loraLoadPenaltyTokens / st.blockSize;
      const adapter = this.adapters.candidates(lora, workers, st.loraAllowLoad, penalty);
      if (adapter.kind === "none")
        return this.reject(
          "no_candidates",
          `no worker holds LoRA adapter ${lora} and loading it elsewhere is off (DYN_ROUTER_LORA_ALLOW_LOAD)`,
        );
      allowedWorkers = new Set(adapter.workers);
      if (adapter.kind === "load") extraCost = new Map([...adapter.workers].map((w) => [w, adapter.penalty]));
    }
    const planRequest: PlanRequest = {
      isl,
      sequenceHashes: computeSequenceHashes(local, this.trackingKey),
      overlaps: this.overlaps(local),
      allowedWorkers,
      extraCost,
      pinned: request.pinned,
      pinnedPrefill: request.pinnedPrefill,
      expectedOutputTokens: request.expectedOutputTokens,
      overrides: this.requestOverrides(request.overrides),
    };
    const sticky = request.pinned ? undefined : this.sessions?.lookup(request.sessionId);
    let plan = this.planner.plan(sticky ? { ...planRequest, pinned: sticky } : planRequest);
    // A session's worker is a preference: when it cannot take the request, route normally.
    if (
      sticky &&
      plan.kind === "rejected" &&
      (plan.reason === "pinned_unavailable" || plan.reason === "pinned_overloaded")
    )
      plan = this.planner.plan(planRequest);
    const booked = plan.kind !== "rejected" && !request.queryOnly && this.planner.book(requestId, plan, planRequest);
    if (booked && plan.kind !== "rejected") {
      this.sessions?.remember(request.sessionId, rankOf(plan.decode.chosen));
      // The engine loads the adapter for this request: from now on that worker holds it.
      if (lora) {
        this.adapters.seen(plan.decode.chosen.rank.workerId, lora);
        if (plan.kind === "disaggregated") this.adapters.seen(plan.prefill.chosen.rank.workerId, lora);
      }
    }
    return this.decide(plan, booked, requestId, isl, local, request);
  }

  private overlaps(local: BigUint64Array): TierOverlaps | undefined {
    if (!this.overlapSource || local.length === 0) return undefined;
    const device = this.overlapSource.findMatches(local).scores;
    if (!this.index) return { device };
    return { device, ...this.index.continuations(local, device) };
  }

  private requestOverrides(o: RouteRequest["overrides"]): PlanRequest["overrides"] {
    if (!o) return undefined;
    const weight = o.overlapScoreWeight;
    if (weight !== undefined && !this.warnedRequestWeight) {
      this.warnedRequestWeight = true;
      this.hooks.onWarning?.(
        "per-request overlap_score_weight is deprecated: it sets prefill_load_scale, and 0 also sets the overlap credit to 0",
      );
    }
    return {
      overlapScoreCredit: weight === 0 ? 0 : o.overlapScoreCredit,
      prefillLoadScale: weight ?? o.prefillLoadScale,
      temperature: o.temperature,
    };
  }

  private decide(
    plan: Plan,
    booked: boolean,
    requestId: string,
    isl: number,
    local: BigUint64Array,
    request: RouteRequest,
  ): RouteResult {
    const policy = this.planner.decode.picker.name;
    if (plan.kind === "rejected") {
      if (plan.reason === "overloaded" || plan.reason === "pinned_overloaded") this.counters.overloaded++;
      const rejection = this.reject(plan.reason, plan.message);
      return withLazyExplain(rejection, () => ({
        policy,
        decode: explainOf(plan.decode, undefined),
        prefill: plan.prefill && explainOf(plan.prefill, undefined),
      }));
    }
    if (!booked && !request.queryOnly)
      return this.reject("duplicate_request", `request id ${requestId} is already booked`);
    const prefillSide = plan.kind === "disaggregated" ? plan.prefill.chosen : plan.decode.chosen;
    if (booked) {
      this.bookings.set(requestId, { disaggregated: plan.kind === "disaggregated" });
      this.approx?.recordRouting(prefillSide.rank, local);
      this.counters.routes++;
      this.counters[plan.kind]++;
      if (plan.kind === "aggregated" && plan.fallback) this.counters.fallbacks++;
    }
    const overlapBlocks = prefillSide.overlapBlocks;
    const decision: Omit<RouteDecision, "explain"> = {
      kind: "routed",
      bookingId: requestId,
      mode: plan.kind,
      fallback: plan.kind === "aggregated" && plan.fallback,
      worker: rankOf(plan.decode.chosen),
      prefillWorker: plan.kind === "disaggregated" ? rankOf(plan.prefill.chosen) : undefined,
      overlapBlocks,
      cachedTokens: Math.min(isl, overlapBlocks * this.settings.blockSize),
      requiredBlocks: requiredBlocks(isl, this.settings.blockSize),
      isl,
      priority: request.priority,
      booked,
    };
    if (booked && this.settings.replicaSync && this.settings.replicaAuditEvery > 0) {
      if (this.hooks.onDecisionAudit && ++this.bookedSinceAudit >= this.settings.replicaAuditEvery) {
        this.bookedSinceAudit = 0;
        this.hooks.onDecisionAudit(auditOf(plan, this.planner));
      }
    }
    return withLazyExplain(decision, () => ({
      policy,
      decode: explainOf(plan.decode, plan.decode),
      prefill:
        plan.kind === "disaggregated"
          ? explainOf(plan.prefill, plan.prefill)
          : plan.prefill && explainOf(plan.prefill, undefined),
    }));
  }

  private reject(reason: RouteRejectReason, message: string): RouteRejection {
    this.counters.rejected++;
    return { kind: "rejected", reason, message };
  }

  /** The prompt has been processed (first token seen): its tokens leave the prefill backlog. */
  markPrefillComplete(bookingId: string): boolean {
    const booking = this.bookings.get(bookingId);
    if (!booking) return false;
    if (booking.disaggregated) this.planner.prefill.sequences.free(bookingId);
    else this.planner.decode.sequences.markPrefillCompleted(bookingId);
    this.releaseQueued();
    return true;
  }

  /** Generated-token count so far (output-block tracking); also renews the lease. */
  observeOutput(bookingId: string, generatedTokens: number): boolean {
    if (!this.bookings.has(bookingId)) return false;
    this.planner.prefill.sequences.renew(bookingId);
    this.planner.decode.sequences.observeOutput(bookingId, generatedTokens);
    return true;
  }

  /**
   * The response is making progress (a body chunk arrived): restarts the booking's lease, so only
   * bookings silent for `DYN_ROUTER_ACTIVE_REQUEST_EXPIRY_SECS` expire. False for unknown ids.
   */
  renew(bookingId: string): boolean {
    if (!this.bookings.has(bookingId)) return false;
    this.planner.prefill.sequences.renew(bookingId);
    this.planner.decode.sequences.renew(bookingId);
    return true;
  }

  /** The request ended (done, error or cancelled). Unknown or already freed ids are a no-op. */
  free(bookingId: string): boolean {
    if (!this.bookings.delete(bookingId)) return false;
    this.planner.prefill.sequences.free(bookingId);
    this.planner.decode.sequences.free(bookingId);
    this.releaseQueued();
    return true;
  }

  /** Frees bookings whose lease is older than `DYN_ROUTER_ACTIVE_REQUEST_EXPIRY_SECS`; returns their ids. */
  expireStale(): string[] {
    const expired = [
      ...new Set([...this.planner.prefill.sequences.expireStale(), ...this.planner.decode.sequences.expireStale()]),
    ];
    if (expired.length > 0) this.releaseQueued();
    return expired;
  }

  private publish(pool: ActiveSequenceEvent["pool"], change: SequenceChange): void {
    if (!this.applyingReplicaEvent) this.hooks.onActiveSequenceEvent?.(replicaEventOf(pool, change, this.routerId));
  }

  /**
   * Applies another replica's booking change (best effort: unknown workers or ids are reported and
   * skipped). Events carrying this router's own id are dropped. Returns whether anything changed.
   */
  applyReplicaEvent(event: ActiveSequenceEvent, onLoadDelta?: (change: RankLoadDelta) => void): boolean {
    if (event.routerId === this.routerId) return false;
    const sequences = (event.pool === "prefill" ? this.planner.prefill : this.planner.decode).sequences;
    this.applyingReplicaEvent = true;
    try {
      if (onLoadDelta === undefined) return applyReplicaChange(sequences, event);
      const rankKey = workerRankKey(event.worker.workerId, event.worker.dpRank);
      const before = sequences.load(rankKey);
      const applied = applyReplicaChange(sequences, event);
      const after = sequences.load(rankKey);
      if (applied)
        onLoadDelta({
          pool: event.pool,
          rank: rankKey,
          delta: {
            prefillTokens: (after?.activePrefillTokens ?? 0) - (before?.activePrefillTokens ?? 0),
            blocks: (after?.activeBlocks ?? 0) - (before?.activeBlocks ?? 0),
            requests: (after?.activeRequests ?? 0) - (before?.activeRequests ?? 0),
          },
        });
      return applied;
    } finally {
      this.applyingReplicaEvent = false;
      this.releaseQueued();
    }
  }

  /** True once `DYN_ROUTER_MIN_INITIAL_WORKERS` workers have been registered (stays true). */
  get ready(): boolean {
    return this.isReady;
  }

  /** Number of live bookings. */
  get activeBookings(): number {
    return this.bookings.size;
  }

  /** Current load of a worker rank in the decode (or prefill) pool. */
  load(worker: WorkerRank, pool: "decode" | "prefill" = "decode") {
    const p = pool === "decode" ? this.planner.decode : this.planner.prefill;
    const rank = p.ranks().find((r) => r.workerId === worker.workerId && r.dpRank === worker.dpRank);
    return rank && p.sequences.load(rank.key);
  }
}
