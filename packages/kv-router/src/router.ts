import { randomBytes } from "node:crypto";
import {
  ApproxIndex,
  CombinedOverlap,
  RadixIndex,
  computeBlockHashes,
  computeSequenceHashes,
  parseWorkerRankKey,
  requiredBlocks,
  workerRankKey,
  type ApplyError,
  type ApplyOutcome,
  type EventGap,
  type OverlapSource,
  type RouterEvent,
  type WorkerRank,
} from "@dynamo/kv-indexer";
import { DisaggPlanner, type Plan, type PlanRequest } from "@dynamo/disagg-planner";
import {
  KvCostPolicy,
  LeastLoadedPolicy,
  PowerOfTwoPolicy,
  RandomPolicy,
  RoundRobinPolicy,
  WorkerPool,
  type Evaluation,
  type RejectReason,
  type Rng,
  type RoutingPolicy,
  type ScoredCandidate,
  type SequenceChange,
  type TierOverlaps,
} from "@dynamo/scorer";
import {
  resolveSettings,
  settingsFromEnv,
  type Environment,
  type KvRouterSettings,
  type RouterMode,
} from "./config.js";

/** A bookkeeping change exchanged between router replicas (Dynamo's `ActiveSequenceEvent`). */
export interface ActiveSequenceEvent {
  readonly requestId: string;
  readonly worker: WorkerRank;
  /** Which of the router's pools the booking lives in. */
  readonly pool: "decode" | "prefill";
  /** Id of the sending router; receivers drop their own events. */
  readonly routerId: bigint;
  readonly data:
    | {
        readonly type: "add_request";
        /** Sequence hashes of the prompt's full blocks (null: blocks counted without deduplication). */
        readonly tokenSequence: BigUint64Array | null;
        readonly privateBlocks: number;
        readonly isl: number;
        /** Uncached prompt tokens booked as prefill backlog (`initial_effective_prefill_tokens`). */
        readonly prefillTokens: number;
        readonly expectedOutputTokens?: number;
      }
    | { readonly type: "mark_prefill_completed" }
    | { readonly type: "free" };
}

/** Runtime hooks that are not configuration values. */
export interface KvRouterHooks {
  /** Uniform [0, 1) source for tie-breaks and sampling (default `Math.random`). */
  readonly rng?: Rng;
  /** Clock in milliseconds (default `Date.now`), for request expiry and approximate-mode TTLs. */
  readonly now?: () => number;
  /** Replaces the policy chosen by `mode` (both pools get their own instance from this factory). */
  readonly policyFactory?: () => RoutingPolicy;
  readonly onWarning?: (message: string) => void;
  /** Index apply errors and bookkeeping problems; never thrown. */
  readonly onError?: (message: string) => void;
  readonly onGap?: (gap: EventGap) => void;
  /** With `replicaSync`: every local booking change, to publish to the other replicas. */
  readonly onActiveSequenceEvent?: (event: ActiveSequenceEvent) => void;
}

export type KvRouterOptions = Partial<KvRouterSettings> & KvRouterHooks;

export type WorkerRole = "prefill" | "decode" | "both";

export interface WorkerRegistration {
  readonly workerId: bigint;
  readonly dpSize?: number;
  readonly dpStart?: number;
  /** `decode` (default) serves whole requests or the decode phase; `prefill` only prefills; `both` joins both pools. */
  readonly role?: WorkerRole;
  readonly kvTotalBlocks?: number;
  readonly maxNumBatchedTokens?: number;
}

export interface RouteRequest {
  /** Prompt token ids (hashed here), or … */
  readonly tokens?: ArrayLike<number>;
  /** … precomputed local block hashes of the prompt's full blocks (salts already applied). */
  readonly localHashes?: BigUint64Array;
  /** Prompt length in tokens; defaults to `tokens.length`, or `localHashes.length × blockSize`. */
  readonly isl?: number;
  readonly loraName?: string;
  readonly cacheSalt?: string;
  /** Only these workers may be chosen (e.g. the EPP subset hint). */
  readonly allowedWorkers?: Iterable<bigint>;
  /** Route to this worker (rank) without scoring; still validated against busy thresholds. */
  readonly pinned?: { readonly workerId: bigint; readonly dpRank?: number };
  readonly pinnedPrefill?: { readonly workerId: bigint; readonly dpRank?: number };
  /** Carried into the decision; there is no router queue, so it does not change the choice. */
  readonly priority?: number;
  /** Expected output length (`osl` hint): decays the request's blocks when output tracking is on. */
  readonly expectedOutputTokens?: number;
  /** Booking id; generated when absent. A duplicate id is rejected. */
  readonly requestId?: string;
  /** Session id (`X-Dynamo-Session-ID`): with session affinity on, the session sticks to its decode worker. */
  readonly sessionId?: string;
  /** Evaluate only: nothing is booked or recorded. */
  readonly queryOnly?: boolean;
  /** Per-request overrides (`router_config_override`); `overlapScoreWeight` follows the deprecated rule. */
  readonly overrides?: {
    readonly overlapScoreCredit?: number;
    readonly prefillLoadScale?: number;
    readonly overlapScoreWeight?: number;
    readonly temperature?: number;
  };
}

/** One candidate rank in the explain record. */
export interface CandidateExplain {
  readonly workerId: bigint;
  readonly dpRank: number;
  readonly overlapBlocks: number;
  readonly hostOverlapBlocks: number;
  readonly diskOverlapBlocks: number;
  /** Prompt blocks left after overlap credit (adjusted prefill, before `prefillLoadScale`). */
  readonly prefillBlocks: number;
  readonly decodeBlocks: number;
  readonly activeRequests: number;
  readonly cost: number;
  /** Rank over a busy threshold (it is excluded only when all its worker's ranks are). */
  readonly busy: boolean;
  readonly chosen: boolean;
  readonly reason: string;
}

export interface RouteExplain {
  readonly policy: string;
  readonly decode: readonly CandidateExplain[];
  readonly prefill?: readonly CandidateExplain[];
}

export interface RouteDecision {
  readonly kind: "routed";
  readonly bookingId: string;
  readonly mode: "aggregated" | "disaggregated";
  /** Aggregated because prefill workers exist but none could take the request. */
  readonly fallback: boolean;
  readonly worker: WorkerRank;
  readonly prefillWorker?: WorkerRank;
  /** Device-tier prefix overlap on the worker that runs the prefill. */
  readonly overlapBlocks: number;
  readonly cachedTokens: number;
  readonly requiredBlocks: number;
  readonly isl: number;
  readonly priority?: number;
  /** False for query-only routes. */
  readonly booked: boolean;
  readonly explain: RouteExplain;
}

export type RouteRejectReason =
  RejectReason | "prefill_unavailable" | "duplicate_request" | "not_ready" | "invalid_request";

export interface RouteRejection {
  readonly kind: "rejected";
  readonly reason: RouteRejectReason;
  readonly message: string;
  readonly explain?: RouteExplain;
}

export type RouteResult = RouteDecision | RouteRejection;

export interface KvRouterCounters {
  routes: number;
  aggregated: number;
  disaggregated: number;
  /** Aggregated routes taken because no prefill worker was available. */
  fallbacks: number;
  overloaded: number;
  rejected: number;
  eventsApplied: number;
  /** Events not indexed: no index in this mode, or an unindexed storage tier. */
  eventsIgnored: number;
  /** Bookings freed because their worker was removed or they went stale. */
  bookingsDropped: number;
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

function makePolicy(mode: RouterMode): RoutingPolicy {
  if (mode === "round-robin") return new RoundRobinPolicy();
  if (mode === "random") return new RandomPolicy();
  if (mode === "least-loaded") return new LeastLoadedPolicy();
  if (mode === "power-of-two") return new PowerOfTwoPolicy();
  return new KvCostPolicy();
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
  };
  /** Device-tier event index (absent in approximate mode or with overlap credit 0). */
  readonly deviceIndex: RadixIndex | undefined;
  private readonly tierIndexes = new Map<"host_pinned" | "disk", RadixIndex>();
  private readonly approx: ApproxIndex | undefined;
  private readonly overlapSource: OverlapSource | undefined;
  private readonly planner: DisaggPlanner;
  private readonly bookings = new Map<string, Booking>();
  private readonly registered = new Set<bigint>();
  private warnedRequestWeight = false;
  private readonly trackingKey: bigint | undefined;
  private readonly sessions: SessionAffinity | undefined;
  private readonly hooks: KvRouterHooks;
  /** Random id of this router, carried by its replica-sync events. */
  readonly routerId: bigint = randomBytes(8).readBigUInt64LE();
  private applyingReplicaEvent = false;
  private nextBooking = 1;
  private ready: boolean;

  /** Configuration from `DYN_*` variables (see README); `options` override the environment. */
  static fromEnv(env: Environment = process.env, options: KvRouterOptions = {}): KvRouter {
    const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
    return new KvRouter({ ...settingsFromEnv(env), ...given });
  }

  constructor(options: KvRouterOptions = {}) {
    const { rng, now, policyFactory, onWarning, onError, onGap, onActiveSequenceEvent, ...settings } = options;
    this.hooks = { rng, now, policyFactory, onWarning, onError, onGap, onActiveSequenceEvent };
    const st = resolveSettings(settings, onWarning);
    this.settings = Object.freeze(st);
    const indexOn = st.overlapScoreCredit > 0;
    const reportApplyError = (e: ApplyError) =>
      onError?.(`KV event ${e.eventId} of ${e.workerKey}: ${e.kind}: ${e.detail}`);
    if (indexOn && st.useKvEvents) {
      this.deviceIndex = new RadixIndex({ onError: reportApplyError, onGap });
      this.overlapSource = this.deviceIndex;
      if (st.predictedTtlSecs !== undefined) {
        this.approx = new ApproxIndex({ ttlMs: st.predictedTtlSecs * 1000, maxEntries: st.maxApproxEntries, now });
        this.overlapSource = new CombinedOverlap(this.deviceIndex, this.approx);
      }
    } else if (indexOn) {
      this.approx = new ApproxIndex({ ttlMs: st.ttlSecs * 1000, maxEntries: st.maxApproxEntries, now });
      this.overlapSource = this.approx;
    }
    if (st.trackingHash === "keyed-xxh3-v1") this.trackingKey = randomBytes(8).readBigUInt64LE();
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
        busy: {
          busyThreshold: st.busyThreshold,
          activeDecodeBlocksThreshold: st.activeDecodeBlocksThreshold,
          activePrefillTokensThreshold: st.activePrefillTokensThreshold,
          activePrefillTokensThresholdFrac: st.activePrefillTokensThresholdFrac,
        },
        policy: policyFactory ? policyFactory() : makePolicy(st.mode),
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
    this.ready = st.minInitialWorkers === 0;
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
    if (!this.ready && this.registered.size >= this.settings.minInitialWorkers) this.ready = true;
  }

  /** Forgets a worker: its ranks, its cached blocks in every index, its bookings. */
  removeWorker(workerId: bigint): void {
    this.registered.delete(workerId);
    this.dropBookings(this.planner.prefill.removeWorker(workerId));
    this.dropBookings(this.planner.decode.removeWorker(workerId));
    this.deviceIndex?.removeWorker(workerId);
    for (const index of this.tierIndexes.values()) index.removeWorker(workerId);
    this.approx?.removeWorker(workerId);
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

  /** Feeds one KV event into the index of its storage tier. */
  applyEvent(event: RouterEvent): ApplyOutcome | "ignored" {
    let index: RadixIndex | undefined;
    if (this.deviceIndex && event.storageTier === "device") index = this.deviceIndex;
    else if (this.deviceIndex && (event.storageTier === "host_pinned" || event.storageTier === "disk")) {
      index = this.tierIndexes.get(event.storageTier);
      if (!index) {
        index = new RadixIndex({
          onError: (e) => this.hooks.onError?.(`${event.storageTier} tier event ${e.eventId}: ${e.kind}`),
          storageTier: event.storageTier,
        });
        this.tierIndexes.set(event.storageTier, index);
      }
    }
    if (!index) {
      this.counters.eventsIgnored++;
      return "ignored";
    }
    this.counters.eventsApplied++;
    return index.apply(event);
  }

  /** Selects and (unless query-only) books in one synchronous step. */
  route(request: RouteRequest): RouteResult {
    const st = this.settings;
    if (!this.ready)
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

    const planRequest: PlanRequest = {
      isl,
      sequenceHashes: computeSequenceHashes(local, this.trackingKey),
      overlaps: this.overlaps(local),
      allowedWorkers: request.allowedWorkers ? new Set(request.allowedWorkers) : undefined,
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
    if (booked && plan.kind !== "rejected") this.sessions?.remember(request.sessionId, rankOf(plan.decode.chosen));
    return this.decide(plan, booked, requestId, isl, local, request);
  }

  private overlaps(local: BigUint64Array): TierOverlaps | undefined {
    if (!this.overlapSource || local.length === 0) return undefined;
    return {
      device: this.overlapSource.findMatches(local).scores,
      host: this.tierIndexes.get("host_pinned")?.findMatches(local).scores,
      disk: this.tierIndexes.get("disk")?.findMatches(local).scores,
    };
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
    const policy = this.planner.decode.policy.name;
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
    return true;
  }

  /** Generated-token count so far (output-block tracking). */
  observeOutput(bookingId: string, generatedTokens: number): boolean {
    if (!this.bookings.has(bookingId)) return false;
    this.planner.decode.sequences.observeOutput(bookingId, generatedTokens);
    return true;
  }

  /** The request ended (done, error or cancelled). Unknown or already freed ids are a no-op. */
  free(bookingId: string): boolean {
    if (!this.bookings.delete(bookingId)) return false;
    this.planner.prefill.sequences.free(bookingId);
    this.planner.decode.sequences.free(bookingId);
    return true;
  }

  /** Frees bookings older than `DYN_ROUTER_ACTIVE_REQUEST_EXPIRY_SECS`; returns their ids. */
  expireStale(): string[] {
    return [
      ...new Set([...this.planner.prefill.sequences.expireStale(), ...this.planner.decode.sequences.expireStale()]),
    ];
  }

  private publish(pool: "decode" | "prefill", change: SequenceChange): void {
    if (this.applyingReplicaEvent) return;
    const { workerId, dpRank } = parseWorkerRankKey(change.rankKey);
    const data: ActiveSequenceEvent["data"] =
      change.type === "add"
        ? {
            type: "add_request",
            tokenSequence: change.spec.sequenceHashes ?? null,
            privateBlocks: change.spec.privateBlocks ?? 0,
            isl: change.spec.isl,
            prefillTokens: change.spec.prefillTokens,
            expectedOutputTokens: change.spec.expectedOutputTokens,
          }
        : { type: change.type === "free" ? "free" : "mark_prefill_completed" };
    this.hooks.onActiveSequenceEvent?.({
      requestId: change.requestId,
      worker: { workerId, dpRank },
      pool,
      routerId: this.routerId,
      data,
    });
  }

  /**
   * Applies another replica's booking change (best effort: unknown workers or ids are reported and
   * skipped). Events carrying this router's own id are dropped. Returns whether anything changed.
   */
  applyReplicaEvent(event: ActiveSequenceEvent): boolean {
    if (event.routerId === this.routerId) return false;
    const sequences = (event.pool === "prefill" ? this.planner.prefill : this.planner.decode).sequences;
    const d = event.data;
    this.applyingReplicaEvent = true;
    try {
      if (d.type === "free") return sequences.free(event.requestId);
      if (d.type === "mark_prefill_completed") return sequences.markPrefillCompleted(event.requestId);
      return sequences.addRequest(event.requestId, workerRankKey(event.worker.workerId, event.worker.dpRank), {
        sequenceHashes: d.tokenSequence,
        privateBlocks: d.privateBlocks,
        isl: d.isl,
        prefillTokens: d.prefillTokens,
        expectedOutputTokens: d.expectedOutputTokens,
      });
    } finally {
      this.applyingReplicaEvent = false;
    }
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

/** Sticky sessions: session id → the decode worker rank it last used, for `ttlMs` after its last use. */
class SessionAffinity {
  private readonly entries = new Map<string, { worker: WorkerRank; expiresAt: number }>();
  private lastSweep: number;

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number,
  ) {
    this.lastSweep = now();
  }

  lookup(sessionId: string | undefined): WorkerRank | undefined {
    if (!sessionId) return undefined;
    const entry = this.entries.get(sessionId);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.entries.delete(sessionId);
      return undefined;
    }
    return entry.worker;
  }

  remember(sessionId: string | undefined, worker: WorkerRank): void {
    if (!sessionId) return;
    const now = this.now();
    this.entries.set(sessionId, { worker, expiresAt: now + this.ttlMs });
    if (now - this.lastSweep >= 30_000) {
      this.lastSweep = now;
      for (const [id, e] of this.entries) if (e.expiresAt <= now) this.entries.delete(id);
    }
  }
}

/** Adds `explain` as an enumerable property built on first read (routing never pays for it). */
function withLazyExplain<T extends object>(
  target: T,
  build: () => RouteExplain,
): T & { readonly explain: RouteExplain } {
  let cached: RouteExplain | undefined;
  return Object.defineProperty(target, "explain", { enumerable: true, get: () => (cached ??= build()) }) as T & {
    readonly explain: RouteExplain;
  };
}

function rankOf(c: ScoredCandidate): WorkerRank {
  return { workerId: c.rank.workerId, dpRank: c.rank.dpRank };
}

function explainOf(evaluation: Evaluation | undefined, chosen: Evaluation | undefined): CandidateExplain[] {
  if (!evaluation) return [];
  const winner = chosen?.kind === "chosen" ? chosen.chosen : undefined;
  const why = chosen?.kind === "chosen" ? chosen.reason : "";
  return evaluation.candidates.map((c) => {
    const allRanksBusy = evaluation.busyWorkers.has(c.rank.workerId);
    const isChosen = c === winner;
    return {
      workerId: c.rank.workerId,
      dpRank: c.rank.dpRank,
      overlapBlocks: c.overlapBlocks,
      hostOverlapBlocks: c.hostOverlapBlocks,
      diskOverlapBlocks: c.diskOverlapBlocks,
      prefillBlocks: c.breakdown.prefillBlocks,
      decodeBlocks: c.breakdown.decodeBlocks,
      activeRequests: c.load.activeRequests,
      cost: c.breakdown.cost,
      busy: c.busyReason !== null,
      chosen: isChosen,
      reason: isChosen
        ? why
        : allRanksBusy
          ? `excluded, all ranks busy: ${c.busyReason}`
          : c.excluded
            ? `skipped, ${c.busyReason}`
            : c.busyReason
              ? `busy rank (worker has free ranks): ${c.busyReason}`
              : "not chosen",
    };
  });
}
