import { randomBytes } from "node:crypto";
import {
  NatsDiscovery,
  discoveryFromEnv,
  fetchModelCard,
  natsOptionsFromEnv,
  formatWorkerId,
  sameWorker,
  type ModelCardFiles,
  type WorkerInfo,
  type WorkerRegistry,
} from "@dynamo/discovery";
import type { LogSink, VllmEventBatch } from "@dynamo/kv-events";
import type { ApplyOutcome, RouterEvent, TieredIndex, WorkerRank } from "@dynamo/kv-indexer";
import {
  KvRouter,
  settingsFromEnv,
  type ActiveSequenceEvent,
  type RankLoadDelta,
  type Environment,
  type KvRouterOptions,
  type RouteRequest,
  type RouteResult,
  type WorkerRole,
} from "@dynamo/kv-router";
import {
  InvalidRequest,
  TOKENIZER_FILE_NAMES,
  TokenizerLoadError,
  TokenizerRegistry,
  UnknownModel,
} from "@dynamo/tokenizer";
import type { NatsConnection } from "@nats-io/transport-node";
import { DEFAULT_SERVICE_SETTINGS, eventPlaneOf, serviceSettingsFromEnv, type ServiceSettings } from "./config.js";
import {
  BlockSizeMismatchError,
  InvalidRequestError,
  NoCandidatesError,
  NotReadyError,
  TokenizerUnavailableError,
  UnknownModelError,
  errorOfRejection,
} from "./errors.js";
import { EventSources } from "./event-sources.js";
import { connectNats } from "./nats-connection.js";
import { bodyHints, bodyText, endpointMatches, parseBody, requestKind, type ServiceRequest } from "./request.js";
import type {
  RouterServiceOptions,
  ServiceDecision,
  ServiceStatus,
  ServiceWorker,
  TokenizedRequest,
  WorkerEventStatus,
} from "./types.js";

const ROUTER_ROLE: Record<WorkerInfo["role"], WorkerRole> = { prefill: "prefill", decode: "decode", both: "decode" };

/**
 * The live KV-aware router: one `KvRouter` kept current by worker discovery, KV events and model cards,
 * with tokenization in front of it.
 *
 * - Discovery adds and removes workers (and their DP ranks); a removed worker leaves the candidates, the
 *   index and its bookings in one step, so a rollover to new pods (new ids, new namespace) is followed.
 * - KV events of every worker land in the router's own index: from the NATS event plane, straight from
 *   each worker's vLLM ZeroMQ publisher, or delivered in-process (`applyEvent`, `applyVllmEvents`).
 * - Model cards register each served model's tokenizer; the block size comes from the configuration or
 *   the first worker.
 *
 * With no discovery, no event plane and an injected clock (`router.now`), the service does no I/O at all:
 * a simulator builds it that way and decides through the same code as a live endpoint picker.
 */
export class RouterService {
  private kv: KvRouter | undefined;
  private sources: EventSources | undefined;
  private readonly settings: ServiceSettings;
  private readonly plane: "nats" | "zmq" | "none";
  private readonly workers = new Map<bigint, WorkerInfo>();
  private readonly pendingWorkers = new Map<bigint, WorkerInfo>();
  private readonly modelCards = new Map<string, Promise<void>>();
  /** LoRA adapters seen in workers' events, with the base model of the worker that served each (if known). */
  private readonly adapterBases = new Map<string, string | undefined>();
  private readonly tokenizers: TokenizerRegistry | undefined;
  private readonly ownsTokenizers: boolean;
  private readonly log: LogSink;
  private discovery: WorkerRegistry | undefined;
  private ownsDiscovery = false;
  private nats: NatsConnection | undefined;
  private ownsNats = false;
  private unsubscribe: Array<() => void> = [];
  private synced = false;
  private stopping = false;
  private inFlight = 0;
  private refused = 0;
  private readonly idle: Array<() => void> = [];

  private constructor(
    private readonly options: RouterServiceOptions,
    private readonly routerOptions: KvRouterOptions,
  ) {
    this.settings = { ...DEFAULT_SERVICE_SETTINGS, ...defined(options.settings ?? {}) };
    this.plane = eventPlaneOf(this.settings);
    this.log = options.log ?? ((line) => console.warn(line));
    if (options.tokenizer instanceof TokenizerRegistry) {
      this.tokenizers = options.tokenizer;
      this.ownsTokenizers = false;
    } else if (options.tokenizer === false) {
      this.ownsTokenizers = false;
    } else {
      const modelPath = this.settings.modelPath;
      this.tokenizers = new TokenizerRegistry({
        ...(modelPath !== undefined && { defaultModel: { directory: modelPath } }),
        ...options.tokenizer,
      });
      this.ownsTokenizers = true;
    }
  }

  /**
   * Builds and starts a service: connects to NATS when discovery or the event plane needs it, starts
   * discovery and subscribes to the events of every worker it reports. Resolves once running (see
   * `ready` / `whenReady` for readiness). Configuration errors and refused NATS credentials reject here.
   */
  static async start(options: RouterServiceOptions = {}): Promise<RouterService> {
    const service = new RouterService(options, {
      ...options.router,
      ...(options.onBookingChange && { replicaSync: true, onActiveSequenceEvent: options.onBookingChange }),
      ...(options.onDecisionAudit && { onDecisionAudit: options.onDecisionAudit }),
    });
    try {
      await service.open();
    } catch (error) {
      await service.stop();
      throw error;
    }
    return service;
  }

  /**
   * A service configured from the environment: router settings (`DYN_*`, see `@dynamo/kv-router`) and
   * service settings (discovery, event plane, NATS, model path); `options` override both.
   */
  static fromEnv(env: Environment = process.env, options: RouterServiceOptions = {}): Promise<RouterService> {
    return RouterService.start({
      ...options,
      env,
      router: { ...settingsFromEnv(env), ...defined(options.router ?? {}) },
      settings: { ...serviceSettingsFromEnv(env), ...defined(options.settings ?? {}) },
    });
  }

  private async open(): Promise<void> {
    const explicitBlockSize = this.routerOptions.blockSize;
    const discovery = this.discoveryOption();
    const needsNats = this.plane === "nats" || this.settings.discovery === "nats";
    if (needsNats && (discovery === undefined || this.plane === "nats")) {
      if (this.options.nats) this.nats = this.options.nats;
      else {
        this.nats = await connectNats(this.settings);
        this.ownsNats = true;
      }
    }
    // Without discovery, or with the block size configured, the router exists from the start; otherwise
    // the first worker's model card gives its block size.
    if (explicitBlockSize !== undefined || discovery === null) this.createRouter(explicitBlockSize);
    if (discovery === null) {
      this.synced = true;
      return;
    }
    this.discovery = discovery ?? this.discoveryFromSettings();
    const registry = this.discovery;
    this.unsubscribe.push(
      registry.on("change", (change) => {
        if (change.type === "removed") this.removeWorker(change.worker.id);
        else this.addWorker(change.worker);
      }),
      registry.on("ready", () => void this.markSyncedWhenSettled()),
    );
    if (this.ownsDiscovery || !registry.ready) await registry.start();
    if (explicitBlockSize !== undefined) {
      // A configured block size the workers do not use would give zero overlap forever: refuse to start.
      const mismatched = registry.list().filter((w) => w.blockSize !== undefined && w.blockSize !== explicitBlockSize);
      if (mismatched.length > 0) {
        const cards = mismatched.map((w) => `${w.name} (${formatWorkerId(w.id)}): ${w.blockSize}`).join(", ");
        throw new BlockSizeMismatchError(
          `DYN_KV_CACHE_BLOCK_SIZE=${explicitBlockSize} disagrees with the KV block size of the workers' model cards (${cards}); ` +
            `unset DYN_KV_CACHE_BLOCK_SIZE to take it from the model card, or set it to the card's value`,
        );
      }
    }
    for (const worker of registry.list()) this.addWorker(worker);
    if (registry.ready) void this.markSyncedWhenSettled();
  }

  private discoveryOption(): WorkerRegistry | null | undefined {
    if (this.options.discovery !== undefined) return this.options.discovery;
    return this.settings.discovery === "none" ? null : undefined;
  }

  private discoveryFromSettings(): WorkerRegistry {
    const env = { ...(this.options.env ?? process.env), DYN_DISCOVERY_BACKEND: this.settings.discovery };
    this.ownsDiscovery = true;
    // NATS discovery shares the service's connection (and so its credentials and TLS).
    if (this.settings.discovery === "nats")
      return new NatsDiscovery({
        ...natsOptionsFromEnv(env as NodeJS.ProcessEnv),
        namespacePrefix: this.settings.namespace,
        connection: this.nats!,
      });
    return discoveryFromEnv(env as NodeJS.ProcessEnv);
  }

  private createRouter(blockSize: number | undefined): KvRouter {
    const router = new KvRouter({ ...this.routerOptions, ...(blockSize !== undefined && { blockSize }) });
    this.kv = router;
    if (router.index) {
      this.sources = new EventSources({
        index: router.index,
        blockSize: router.settings.blockSize,
        plane: this.plane,
        nats: this.nats,
        namespace: this.settings.namespace,
        component: this.settings.component,
        log: this.log,
        onAdapter: (workerId, name) => this.noteAdapter(workerId, name),
        ...(this.options.recovery && { recovery: this.options.recovery }),
        ...(this.settings.durableKvEvents && { durableConsumer: `router-${randomBytes(6).toString("hex")}` }),
      });
    }
    for (const worker of this.pendingWorkers.values()) this.addWorker(worker);
    this.pendingWorkers.clear();
    return router;
  }

  private async markSyncedWhenSettled(): Promise<void> {
    if (this.synced) return;
    await this.sources?.settled();
    await Promise.allSettled([...this.modelCards.values()]);
    this.synced = true;
  }

  /** The router, once its block size is known (at start, or from the first worker). */
  get router(): KvRouter | undefined {
    return this.kv;
  }

  /** The worker registry in use (absent without discovery): its `ready` drops while its list may be stale. */
  get registry(): WorkerRegistry | undefined {
    return this.discovery;
  }

  /** The router's KV index (absent in approximate mode). */
  get index(): TieredIndex | undefined {
    return this.kv?.index;
  }

  /**
   * True once the service can route as configured: discovery has listed its workers at least once,
   * `DYN_ROUTER_MIN_INITIAL_WORKERS` are known, and the KV-event subscriptions and model cards of the
   * workers present then are synchronised. False again while stopping.
   */
  get ready(): boolean {
    return this.waitingFor() === undefined;
  }

  private waitingFor(): string | undefined {
    if (this.stopping) return "the service is stopping";
    if (!this.kv) return "the first worker (its block size)";
    if (!this.synced) return this.discovery?.ready === false ? "discovery's first list" : "KV-event synchronisation";
    if (!this.kv.ready) return `${this.kv.settings.minInitialWorkers} workers (DYN_ROUTER_MIN_INITIAL_WORKERS)`;
    return undefined;
  }

  /** Resolves once `ready`; rejects after `timeoutMs` saying what it still waits for. */
  async whenReady(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ready) {
      if (Date.now() > deadline)
        throw new NotReadyError(`router service not ready after ${timeoutMs} ms: waiting for ${this.waitingFor()}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  status(): ServiceStatus {
    return {
      ready: this.ready,
      waitingFor: this.waitingFor(),
      workers: this.workers.size,
      blockSize: this.kv?.settings.blockSize,
      eventPlane: this.plane,
      pendingSyncs: this.sources?.pending ?? 0,
      activeBookings: this.kv?.activeBookings ?? 0,
      refusedWorkers: this.refused,
      workerEvents: this.workerEvents(),
    };
  }

  private workerEvents(): WorkerEventStatus[] {
    const counts = this.kv?.index?.workerEventCounts() ?? new Map<bigint, { applied: number; rejected: number }>();
    const wrong = this.sources?.wrongBlockSizeByWorker() ?? new Map<bigint, number>();
    const ids = new Set([...counts.keys(), ...wrong.keys()]);
    return [...ids].map((workerId) => ({
      workerId,
      applied: counts.get(workerId)?.applied ?? 0,
      rejected: counts.get(workerId)?.rejected ?? 0,
      wrongBlockSize: wrong.get(workerId) ?? 0,
    }));
  }

  /** Workers known, by id. */
  listWorkers(): WorkerInfo[] {
    return [...this.workers.values()];
  }

  /**
   * Registers a worker (or updates it): its ranks join the candidates, its KV events are followed on the
   * configured plane, its model card registers its tokenizer. Discovery calls this for every worker it
   * reports; without discovery, call it directly. A worker whose block size differs from the router's is
   * refused (its blocks could never match) and reported through the log.
   */
  addWorker(spec: ServiceWorker): void {
    const worker = completeWorker(spec);
    const known = this.workers.get(worker.id);
    if (known && sameWorker(known, worker)) return;
    if (!this.kv) {
      this.pendingWorkers.set(worker.id, worker);
      this.createRouter(worker.blockSize);
      return;
    }
    const blockSize = this.kv.settings.blockSize;
    if (worker.blockSize !== undefined && worker.blockSize !== blockSize) {
      this.refused++;
      this.log(
        `router service: worker ${formatWorkerId(worker.id)} (${worker.name}) uses KV block size ${worker.blockSize}, the router ${blockSize}: not routed to`,
      );
      if (known) this.removeWorker(worker.id);
      return;
    }
    this.kv.addWorker({
      workerId: worker.id,
      dpSize: worker.dpSize,
      dpStart: worker.dpStartRank,
      role: ROUTER_ROLE[worker.role],
      ...(worker.capacity?.totalKvBlocks !== undefined && { kvTotalBlocks: worker.capacity.totalKvBlocks }),
      ...(worker.capacity?.maxNumBatchedTokens !== undefined && {
        maxNumBatchedTokens: worker.capacity.maxNumBatchedTokens,
      }),
    });
    this.workers.set(worker.id, worker);
    if (!known || !sameEventSource(known, worker)) this.sources?.addWorker(worker);
    this.registerModelCard(worker);
  }

  /** Forgets a worker: candidates, index (every tier), bookings and event subscription, in one step. */
  removeWorker(workerId: bigint): void {
    this.pendingWorkers.delete(workerId);
    if (!this.workers.delete(workerId)) return;
    this.kv?.removeWorker(workerId);
    this.sources?.removeWorker(workerId);
  }

  private registerModelCard(worker: WorkerInfo): void {
    const model = worker.modelName;
    if (!this.tokenizers || !worker.modelCard || model === undefined || this.modelCards.has(model)) return;
    const registry = this.tokenizers;
    const card = worker.modelCard;
    const files =
      this.discovery instanceof NatsDiscovery
        ? this.discovery.modelCardFiles(worker)
        : fetchModelCard(card, this.nats ? { nats: this.nats } : {});
    const task = files
      .then((files) => registry.register(model, { files: tokenizerFiles(files) }))
      .catch((error: unknown) => {
        this.modelCards.delete(model); // the next worker of this model tries again
        this.log(`router service: model card of ${model} (worker ${worker.name}): ${(error as Error).message}`);
      });
    this.modelCards.set(model, task);
  }

  /** A worker's KV events carry blocks of LoRA adapter `name`: it holds the adapter now. */
  private noteAdapter(workerId: bigint, name: string): void {
    this.kv?.noteAdapter(workerId, name);
    const base = this.workers.get(workerId)?.modelName;
    if (!this.adapterBases.has(name) || (base !== undefined && this.adapterBases.get(name) === undefined))
      this.adapterBases.set(name, base);
  }

  /**
   * The LoRA adapter a request's `model` names (as vLLM serves adapters, by name), with its base model:
   * a name seen as `lora_name` in some worker's events (it stays known after workers drop the adapter).
   */
  private adapterNamed(model: string): { name: string; base: string | undefined } | undefined {
    if (model === "" || !this.adapterBases.has(model)) return undefined;
    return { name: model, base: this.adapterBases.get(model) };
  }

  /** Applies a router event to the router's index (in-process event delivery). */
  applyEvent(event: RouterEvent): ApplyOutcome | "ignored" {
    return this.kv?.applyEvent(event) ?? "ignored";
  }

  /**
   * Applies vLLM-shaped KV events of one worker rank (a batch, or its msgpack payload) as if they had come
   * over ZeroMQ: translated with router hashes recomputed from the token ids, numbered per rank.
   */
  applyVllmEvents(rank: WorkerRank, batch: VllmEventBatch | Uint8Array): void {
    this.sources?.applyVllm(rank, batch);
  }

  /**
   * Tokenizes a request on the tokenizer pool (never on the caller's event loop): the model's tokenizer
   * and chat template, or the ids given. Throws `InvalidRequestError`, `UnknownModelError` or
   * `TokenizerUnavailableError`.
   */
  async tokenize(request: ServiceRequest): Promise<TokenizedRequest> {
    const started = performance.now();
    const text = bodyText(request.body);
    const body =
      request.body === undefined
        ? undefined
        : text !== undefined && request.parsedBody !== undefined
          ? request.parsedBody
          : parseBody(text ?? request.body);
    const hints = bodyHints(body);
    const requested = request.model ?? hints.model ?? "";
    const adapter = request.loraName === undefined ? this.adapterNamed(requested) : undefined;
    if (request.tokens !== undefined) {
      const tokens = Uint32Array.from(request.tokens);
      return {
        tokens,
        injectable: true,
        model: request.model ?? "",
        tokenizeMs: 0,
        hints,
        ...(adapter && { loraName: adapter.name }),
      };
    }
    if (body === undefined) throw new InvalidRequestError("request carries neither a body nor token ids");
    const kind = requestKind(body, request.kind);
    if (!this.tokenizers) throw new InvalidRequestError("this service routes token ids only (no tokenizer)");
    const model = adapter ? (adapter.base ?? requested) : requested;
    this.inFlight++;
    try {
      await this.modelCards.get(model); // a card of this model still being fetched registers its tokenizer first
      const tokenizer = await this.tokenizers.get(model);
      // The raw text when there is one: the tokenizer parses it as the engine does (floats stay floats,
      // long integers keep their digits), which a body parsed with JSON.parse can no longer show.
      const { tokenIds, injectable } = await tokenizer.tokenizeRequest(kind, text ?? body);
      return {
        tokens: tokenIds,
        injectable,
        model: tokenizer.model,
        tokenizeMs: performance.now() - started,
        hints,
        ...(adapter && { loraName: adapter.name }),
      };
    } catch (error) {
      if (error instanceof InvalidRequest) throw new InvalidRequestError(error.message);
      if (error instanceof UnknownModel) throw new UnknownModelError(error.message);
      if (error instanceof TokenizerLoadError) throw new TokenizerUnavailableError(error.message);
      throw error;
    } finally {
      if (--this.inFlight === 0) for (const wake of this.idle.splice(0)) wake();
    }
  }

  /**
   * Selects and (unless query-only) books, synchronously, in one step: the request's blocks are hashed,
   * looked up in the index and every candidate scored. Throws a `RouteError` subclass when the request
   * cannot be routed (nothing is booked then).
   */
  routeTokenized(request: ServiceRequest, tokenized: TokenizedRequest): ServiceDecision {
    const started = performance.now();
    return this.decisionOf(this.readyRouter().route(this.routeRequestOf(request, tokenized)), tokenized, started);
  }

  /**
   * `routeTokenized` behind the router queue (`DYN_ROUTER_QUEUE_THRESHOLD`): while every candidate is
   * over the threshold the request waits for load to free; a full queue or a wait past the deadline
   * throws `QueueOverloadedError` (429). With the queue off it routes at once. `signal` takes a waiting
   * request out of the queue.
   */
  async routeTokenizedQueued(
    request: ServiceRequest,
    tokenized: TokenizedRequest,
    signal?: AbortSignal,
  ): Promise<ServiceDecision> {
    const started = performance.now();
    const result = await this.readyRouter().routeQueued(this.routeRequestOf(request, tokenized), signal);
    return this.decisionOf(result, tokenized, started);
  }

  private readyRouter(): KvRouter {
    const router = this.kv;
    if (!router || this.stopping)
      throw new NotReadyError(`router service not ready: waiting for ${this.waitingFor() ?? "workers"}`);
    return router;
  }

  private routeRequestOf(request: ServiceRequest, tokenized: TokenizedRequest): RouteRequest {
    const hints = tokenized.hints ?? {};
    const allowedWorkers = this.allowedWorkers(request);
    return {
      tokens: tokenized.tokens,
      ...(request.requestId !== undefined && { requestId: request.requestId }),
      ...(allowedWorkers !== undefined && { allowedWorkers }),
      ...(request.pinned !== undefined && { pinned: request.pinned }),
      ...(request.pinnedPrefill !== undefined && { pinnedPrefill: request.pinnedPrefill }),
      ...(request.sessionId !== undefined && { sessionId: request.sessionId }),
      ...optional("loraName", request.loraName ?? tokenized.loraName),
      ...(request.overrides !== undefined && { overrides: request.overrides }),
      ...(request.queryOnly !== undefined && { queryOnly: request.queryOnly }),
      ...optional("cacheSalt", request.cacheSalt ?? hints.cacheSalt),
      ...optional("priority", request.priority ?? hints.priority),
      ...optional("expectedOutputTokens", request.expectedOutputTokens ?? hints.expectedOutputTokens),
    };
  }

  private decisionOf(result: RouteResult, tokenized: TokenizedRequest, started: number): ServiceDecision {
    if (result.kind === "rejected") throw errorOfRejection(result.reason, result.message, result.explain);
    const routeMs = performance.now() - started;
    return Object.defineProperties(
      {
        tokens: tokenized.tokens,
        injectable: tokenized.injectable,
        model: tokenized.model,
        endpoint: this.endpointOf(result.worker),
        prefillEndpoint: result.prefillWorker && this.endpointOf(result.prefillWorker),
        timings: { tokenizeMs: tokenized.tokenizeMs, routeMs },
      },
      Object.getOwnPropertyDescriptors(result),
    ) as ServiceDecision;
  }

  /** `tokenize` then `routeTokenized`, with both steps timed in `decision.timings`. */
  async route(request: ServiceRequest): Promise<ServiceDecision> {
    if (!this.kv || this.stopping)
      throw new NotReadyError(`router service not ready: waiting for ${this.waitingFor() ?? "workers"}`);
    return this.routeTokenizedQueued(request, await this.tokenize(request));
  }

  /** First response chunk seen: the prompt left the prefill backlog (disaggregated: the prefill booking ends). */
  markPrefillComplete(bookingId: string): boolean {
    return this.kv?.markPrefillComplete(bookingId) ?? false;
  }

  /** Tokens generated so far (output-block tracking, `DYN_ROUTER_TRACK_OUTPUT_BLOCKS`). */
  observeOutput(bookingId: string, generatedTokens: number): boolean {
    return this.kv?.observeOutput(bookingId, generatedTokens) ?? false;
  }

  /** The response is making progress: restarts the booking's lease (`DYN_ROUTER_ACTIVE_REQUEST_EXPIRY_SECS`). */
  renew(bookingId: string): boolean {
    return this.kv?.renew(bookingId) ?? false;
  }

  /** The request ended (done, failed or cancelled). Unknown or already freed ids are a no-op. */
  free(bookingId: string): boolean {
    return this.kv?.free(bookingId) ?? false;
  }

  /** Replica sync: applies another replica's booking change. */
  applyBookingChange(event: ActiveSequenceEvent, onLoadDelta?: (change: RankLoadDelta) => void): boolean {
    return this.kv?.applyReplicaEvent(event, onLoadDelta) ?? false;
  }

  /**
   * Stops: readiness drops at once, tokenizations in flight finish (up to `drainMs`), then event
   * subscriptions, discovery, the NATS connection and the tokenizer pool are closed (those the service
   * opened itself).
   */
  async stop(drainMs = 5_000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.inFlight > 0) {
      await Promise.race([
        new Promise<void>((resolve) => this.idle.push(resolve)),
        new Promise((resolve) => setTimeout(resolve, drainMs).unref()),
      ]);
    }
    for (const off of this.unsubscribe.splice(0)) off();
    await this.sources?.close();
    if (this.ownsDiscovery) await this.discovery?.stop();
    if (this.ownsNats) await this.nats?.close();
    if (this.ownsTokenizers) await this.tokenizers?.close();
  }

  private allowedWorkers(request: ServiceRequest): Set<bigint> | undefined {
    let allowed: Set<bigint> | undefined;
    if (request.allowedEndpoints !== undefined) {
      allowed = new Set();
      for (const worker of this.workers.values()) {
        const addresses = [worker.httpEndpoint, ...worker.rankHttpEndpoints];
        if (request.allowedEndpoints.some((entry) => addresses.some((a) => a !== "" && endpointMatches(a, entry))))
          allowed.add(worker.id);
      }
      if (allowed.size === 0)
        throw new NoCandidatesError(
          `no worker matches the subset hint ${JSON.stringify(request.allowedEndpoints)} (no endpoints available)`,
        );
    }
    if (request.allowedWorkers !== undefined) {
      const ids = new Set(request.allowedWorkers);
      allowed = allowed ? new Set([...allowed].filter((id) => ids.has(id))) : ids;
    }
    return allowed;
  }

  private endpointOf(rank: WorkerRank): string | undefined {
    const worker = this.workers.get(rank.workerId);
    if (!worker) return undefined;
    const endpoint = worker.rankHttpEndpoints[rank.dpRank - worker.dpStartRank] ?? worker.httpEndpoint;
    return endpoint === "" ? undefined : endpoint;
  }
}

function defined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

/** A full `WorkerInfo` from an in-process registration (discovery's records are already complete). */
function completeWorker(spec: ServiceWorker): WorkerInfo {
  const dpSize = spec.dpSize ?? Math.max(1, spec.rankHttpEndpoints?.length ?? 1);
  const httpEndpoint = spec.httpEndpoint ?? spec.rankHttpEndpoints?.[0] ?? "";
  return {
    name: formatWorkerId(spec.id),
    role: "both",
    namespace: "",
    component: "",
    dpStartRank: 0,
    ...spec,
    dpSize,
    httpEndpoint,
    rankHttpEndpoints: spec.rankHttpEndpoints ?? Array.from({ length: dpSize }, () => httpEndpoint),
  };
}

/** Whether two snapshots of a worker subscribe to the same events. */
function sameEventSource(a: WorkerInfo, b: WorkerInfo): boolean {
  return (
    a.namespace === b.namespace &&
    a.component === b.component &&
    a.dpSize === b.dpSize &&
    a.dpStartRank === b.dpStartRank &&
    JSON.stringify(a.kvEvents ?? null) === JSON.stringify(b.kvEvents ?? null)
  );
}

/** Model-card files (by file name) as tokenizer files. */
function tokenizerFiles(files: ModelCardFiles) {
  const text = (name: string) => {
    const bytes = files[name];
    return bytes === undefined ? undefined : new TextDecoder().decode(bytes);
  };
  const tokenizer = text(TOKENIZER_FILE_NAMES.tokenizer);
  if (tokenizer === undefined) throw new Error(`model card has no ${TOKENIZER_FILE_NAMES.tokenizer}`);
  const tokenizerConfig = text(TOKENIZER_FILE_NAMES.tokenizerConfig);
  const chatTemplate = text(TOKENIZER_FILE_NAMES.chatTemplate);
  const generationConfig = text(TOKENIZER_FILE_NAMES.generationConfig);
  return {
    tokenizer,
    ...(tokenizerConfig !== undefined && { tokenizerConfig }),
    ...(chatTemplate !== undefined && { chatTemplate }),
    ...(generationConfig !== undefined && { generationConfig }),
  };
}
