import type { KvEventBatch } from "@dynamo/engine-sim";
import type { ActiveSequenceEvent } from "@dynamo/kv-router";
import { seededRng } from "@dynamo/primitives";
import { RouterService, type ServiceDecision } from "@dynamo/router-service";
import {
  ApproxPrefixIndex,
  ApproxPrefixProducer,
  createPicker,
  registerBaselinePickers,
  type EndpointSignals,
} from "@dynamo/scheduling";
import type { PolicySpec } from "./policies.js";

/** A FIFO of items due at non-decreasing times. */
class DueQueue<T> {
  private items: Array<{ at: number; item: T }> = [];
  private head = 0;

  push(at: number, item: T): void {
    this.items.push({ at, item });
  }

  /** Hands every item due at or before `t` to `f`, in order. */
  drain(t: number, f: (item: T) => void): void {
    while (this.head < this.items.length && this.items[this.head]!.at <= t) f(this.items[this.head++]!.item);
    if (this.head > 4096) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}

export interface ReplicaOptions {
  readonly policy: PolicySpec;
  readonly blockSize: number;
  readonly numGpuBlocks: number;
  readonly workerIds: readonly bigint[];
  readonly signals: EndpointSignals;
  readonly now: () => number;
  readonly seed: number;
  /** Router replicas; requests go to them in turn (a gateway balancing the pickers). */
  readonly replicas: number;
  /** Delay of a booking change of one replica reaching the others (ms). */
  readonly syncDelayMs: number;
  /** Delay of an engine's KV event reaching every replica (ms). */
  readonly eventDelayMs: number;
  /**
   * With several replicas, keep a shadow router that sees every booking change at once (and the KV
   * events when the replicas do), to count the decisions the sync delay changed.
   */
  readonly measureConflicts?: boolean;
  /** Replicas' `replicaTieBand` (0: exact ties only). */
  readonly tieBand?: number;
}

/** Decisions checked against the shadow router, and those a replica would have made differently. */
export interface ConflictCount {
  checked: number;
  changed: number;
}

/**
 * One or more `RouterService`s in simulator mode deciding for the same engines: each hears every engine's
 * KV events after the event delay and, with several replicas, every other replica's booking changes
 * after the sync delay. Each replica has its own picker (and its own GAIE prefix producer).
 */
export class RouterReplicas {
  private readonly events = new DueQueue<{ worker: bigint; batch: KvEventBatch }>();
  private readonly sync = new DueQueue<{ from: number; event: ActiveSequenceEvent }>();
  private turn = 0;
  readonly conflicts: ConflictCount = { checked: 0, changed: 0 };

  private constructor(
    private readonly o: ReplicaOptions,
    readonly services: readonly RouterService[],
    readonly producers: readonly ApproxPrefixProducer[],
    private readonly shadow: RouterService | undefined,
  ) {}

  static async start(o: ReplicaOptions): Promise<RouterReplicas> {
    const services: RouterService[] = [];
    const producers: ApproxPrefixProducer[] = [];
    // Booking changes are queued through the object built below, once every replica exists.
    const ref: { replicas?: RouterReplicas } = {};
    const shadow =
      o.replicas > 1 && o.measureConflicts
        ? (await RouterReplicas.startOne(o, o.replicas, undefined)).service
        : undefined;
    for (let r = 0; r < o.replicas; r++) {
      const { service, producer } = await RouterReplicas.startOne(
        o,
        r,
        o.replicas > 1
          ? (event: ActiveSequenceEvent) => {
              shadow?.applyBookingChange(event);
              ref.replicas?.sync.push(o.now() + o.syncDelayMs, { from: r, event });
            }
          : undefined,
      );
      services.push(service);
      producers.push(producer);
    }
    ref.replicas = new RouterReplicas(o, services, producers, shadow);
    return ref.replicas;
  }

  /** One router: its own picker, GAIE prefix producer and random stream (seed + `r`). */
  private static async startOne(
    o: ReplicaOptions,
    r: number,
    onBookingChange: ((event: ActiveSequenceEvent) => void) | undefined,
  ): Promise<{ service: RouterService; producer: ApproxPrefixProducer }> {
    // GAIE auto-tuned from the engines' cache_config_info: their block size and block count.
    const producer = new ApproxPrefixProducer(
      new ApproxPrefixIndex({ blockSizeTokens: o.blockSize, lruCapacityPerServer: o.numGpuBlocks }),
    );
    registerBaselinePickers({ signals: o.signals, producer, blockSize: o.blockSize });
    const picker = createPicker(o.policy.router.picker);
    const service = await RouterService.start({
      router: {
        ...o.policy.router,
        ...(o.tieBand !== undefined && { replicaTieBand: o.tieBand }),
        picker: () => picker,
        blockSize: o.blockSize,
        now: o.now,
        rng: seededRng(o.seed + r),
      },
      tokenizer: false,
      discovery: null,
      env: {},
      log: () => undefined,
      ...(onBookingChange && { onBookingChange }),
    });
    o.workerIds.forEach((id) => service.addWorker({ id, httpEndpoint: `10.0.0.${id}:8000` }));
    return { service, producer };
  }

  /**
   * What a router seeing every replica's bookings at once would pick for `tokens` (query only, nothing
   * booked); undefined without a shadow router. Ask before the replica routes the request.
   */
  shadowDecision(tokens: Uint32Array): ServiceDecision | undefined {
    return this.shadow?.routeTokenized(
      { tokens, queryOnly: true },
      { tokens, injectable: false, model: "", tokenizeMs: 0 },
    );
  }

  /**
   * Counts a replica's choice of `workerId` against the shadow's decision: changed when, on the whole
   * cluster's bookings, the replica's worker was busy or cost more than the shadow's pick (equal costs
   * are ties, not conflicts).
   */
  noteConflict(shadow: ServiceDecision, workerId: bigint): void {
    this.conflicts.checked++;
    if (shadow.worker.workerId === workerId) return;
    const candidates = shadow.explain.decode;
    const best = candidates.find((c) => c.chosen);
    const mine = candidates.find((c) => c.workerId === workerId);
    if (!best || !mine || mine.busy || mine.cost > best.cost + 1e-9) this.conflicts.changed++;
  }

  /** An engine's KV batch, to reach every replica after the event delay. */
  kvEvents(worker: bigint, batch: KvEventBatch): void {
    this.events.push(this.o.now() + this.o.eventDelayMs, { worker, batch });
  }

  /** Applies every KV batch and booking change due by `t`. */
  deliver(t: number): void {
    this.events.drain(t, ({ worker, batch }) => {
      for (const s of this.services) s.applyVllmEvents({ workerId: worker, dpRank: 0 }, batch);
      this.shadow?.applyVllmEvents({ workerId: worker, dpRank: 0 }, batch);
    });
    this.sync.drain(t, ({ from, event }) => {
      this.services.forEach((s, r) => void (r !== from && s.applyBookingChange(event)));
    });
  }

  /** The replica the next request goes to (in turn). */
  next(): number {
    const r = this.turn;
    this.turn = (this.turn + 1) % this.services.length;
    return r;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.services, ...(this.shadow ? [this.shadow] : [])].map((s) => s.stop(0)));
  }
}
