import type { WorkerInfo } from "@dynamo/discovery";
import {
  KvEventSubscriber,
  VllmEventIngest,
  ZmqEventSubscriber,
  type LogSink,
  type RecoveryPolicy,
  type VllmEventBatch,
} from "@dynamo/kv-events";
import type { TieredIndex, WorkerRank } from "@dynamo/kv-indexer";
import type { NatsConnection } from "@nats-io/transport-node";

export interface EventSourceOptions {
  /** The router's index: every source applies here. */
  readonly index: TieredIndex;
  readonly blockSize: number;
  readonly plane: "nats" | "zmq" | "none";
  readonly nats?: NatsConnection;
  /** Event-plane namespace and component of workers whose record names none. */
  readonly namespace: string;
  readonly component: string;
  /** Durable mode: consume the JetStream stream through this consumer name. */
  readonly durableConsumer?: string;
  readonly recovery?: Partial<RecoveryPolicy>;
  readonly log: LogSink;
  /** A worker's vLLM events carry blocks of this LoRA adapter. */
  readonly onAdapter?: (workerId: bigint, loraName: string) => void;
}

interface Plane {
  readonly subscriber: Promise<KvEventSubscriber>;
  readonly workers: Set<bigint>;
}

/**
 * Where the router's KV events come from, per worker: the NATS event plane (one subscriber per Dynamo
 * namespace and component, so a rollover to a new namespace is followed), each worker's vLLM ZeroMQ
 * publisher, or in-process deliveries (router events, or vLLM batches translated here). Every source
 * applies to the router's own index.
 */
export class EventSources {
  /** vLLM batches → router events, one translator per worker rank (ZeroMQ and in-process). */
  private readonly ingest: VllmEventIngest;
  private zmq: ZmqEventSubscriber | undefined;
  private readonly planes = new Map<string, Plane>();
  private readonly planeOf = new Map<bigint, string>();
  private readonly syncing = new Set<Promise<void>>();

  constructor(private readonly options: EventSourceOptions) {
    this.ingest = new VllmEventIngest(
      {
        blockSize: options.blockSize,
        log: options.log,
        ...(options.onAdapter && { onAdapter: options.onAdapter }),
      },
      (event) => options.index.apply(event),
    );
  }

  /** Subscribes to a worker's events (replacing an earlier subscription of the same id). */
  addWorker(worker: WorkerInfo): void {
    const ranks = Array.from({ length: worker.dpSize }, (_, i) => worker.dpStartRank + i);
    if (this.options.plane === "nats") this.followOnNats(worker, ranks);
    else if (this.options.plane === "zmq") this.followOnZmq(worker, ranks);
  }

  /** Stops following a worker; its events still in flight are dropped. */
  removeWorker(workerId: bigint): void {
    this.ingest.forgetWorker(workerId);
    if (this.zmq) this.track(this.zmq.removeWorker(workerId));
    const key = this.planeOf.get(workerId);
    if (key === undefined) return;
    this.planeOf.delete(workerId);
    const plane = this.planes.get(key)!;
    plane.workers.delete(workerId);
    this.track(
      plane.subscriber.then(async (subscriber) => {
        subscriber.removeWorker(workerId);
        if (plane.workers.size === 0 && this.planes.get(key) === plane) {
          this.planes.delete(key);
          await subscriber.close();
        }
      }),
    );
  }

  /** Applies vLLM-shaped events of one worker rank, as a ZeroMQ subscription would. */
  applyVllm(rank: WorkerRank, batch: VllmEventBatch | Uint8Array): void {
    if (batch instanceof Uint8Array) this.ingest.onBatch(rank, batch);
    else this.ingest.onDecodedBatch(rank, batch);
  }

  /** Resolves once every initial synchronisation started so far has finished. */
  async settled(): Promise<void> {
    while (this.syncing.size > 0) await Promise.all([...this.syncing]);
    await this.ingest.idle();
  }

  /** `BlockStored` events of another block size than the router's, per worker (vLLM ingest). */
  wrongBlockSizeByWorker(): Map<bigint, number> {
    const out = new Map<bigint, number>();
    for (const [workerId, issues] of this.ingest.issuesByWorker()) out.set(workerId, issues.wrong_block_size);
    return out;
  }

  /** Synchronisations running. */
  get pending(): number {
    return this.syncing.size;
  }

  async close(): Promise<void> {
    const planes = [...this.planes.values()];
    this.planes.clear();
    this.planeOf.clear();
    await Promise.allSettled(planes.map((p) => p.subscriber.then((s) => s.close())));
    await this.zmq?.close();
    await this.settled().catch(() => undefined);
  }

  private followOnNats(worker: WorkerInfo, ranks: number[]): void {
    const namespace = worker.namespace || this.options.namespace;
    const component = worker.component || this.options.component;
    const key = `${namespace}\u0000${component}`;
    const previous = this.planeOf.get(worker.id);
    if (previous !== undefined && previous !== key) this.removeWorker(worker.id);
    let plane = this.planes.get(key);
    if (!plane) {
      const nc = this.options.nats;
      if (!nc) throw new Error("the NATS event plane needs a NATS connection");
      plane = {
        subscriber: KvEventSubscriber.start({
          nc,
          namespace,
          component,
          index: this.options.index,
          log: this.options.log,
          ...(this.options.recovery && { recovery: this.options.recovery }),
          ...(this.options.durableConsumer !== undefined && { durableConsumer: this.options.durableConsumer }),
        }),
        workers: new Set(),
      };
      this.planes.set(key, plane);
    }
    plane.workers.add(worker.id);
    this.planeOf.set(worker.id, key);
    const current = plane;
    this.track(
      current.subscriber.then((subscriber) =>
        Promise.all(ranks.map((rank) => subscriber.syncWorker(worker.id, rank))).then(() => undefined),
      ),
    );
  }

  private followOnZmq(worker: WorkerInfo, ranks: number[]): void {
    const endpoints = worker.kvEvents?.endpoints;
    if (!endpoints || endpoints.length === 0) {
      this.options.log(`router service: worker ${worker.id} (${worker.name}) announces no KV-event endpoint`);
      return;
    }
    const zmq = (this.zmq ??= new ZmqEventSubscriber(this.ingest, { log: this.options.log }));
    const replay = worker.kvEvents?.replayEndpoints;
    // Synchronised (the service ready) once the replay sockets' history is in: a starting router warms its index.
    this.track(
      zmq
        .addWorker({
          workerId: worker.id,
          endpoint: endpoints[0]!,
          dpRanks: ranks,
          rankEndpoints: ranks.map((_, i) => endpoints[i] ?? endpoints[0]!),
          ...(replay && replay.length > 0 && { rankReplayEndpoints: ranks.map((_, i) => replay[i] ?? replay[0]!) }),
        })
        .then(() => zmq.synced(worker.id)),
    );
  }

  private track(task: Promise<unknown>): void {
    const tracked: Promise<void> = task
      .then(() => undefined)
      .catch((error: unknown) => this.options.log(`router service: KV events: ${(error as Error).message}`))
      .finally(() => this.syncing.delete(tracked));
    this.syncing.add(tracked);
  }
}
