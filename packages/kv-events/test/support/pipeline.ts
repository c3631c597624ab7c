import { EngineEventSource } from "@dynamo/engine-sim";
import { NatsServer, freePort, waitFor } from "@dynamo/testkit";
import { RadixIndex, type StoredData } from "@dynamo/kv-indexer";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  KvEventBridge,
  connectEventPlane,
  encodeVllmEventBatch,
  KvEventSubscriber,
  VllmEventTranslator,
  ZmqEventPublisher,
  type VllmEventBatch,
} from "../../src/index.js";

export const BLOCK_SIZE = 16;
export const quiet = (): void => undefined;

/** The index's content as sorted `(rank, parent, block, tokens)` lines, independent of event ids and order. */
export function canonicalState(index: Pick<RadixIndex, "dump">, workerId?: bigint): string[] {
  return index
    .dump()
    .filter((e) => workerId === undefined || e.workerId === workerId)
    .map((e) => {
      const d = e.data as StoredData;
      return `${e.workerId}/${e.dpRank} ${d.parentHash ?? "-"} ${d.blockHashes[0]} ${d.tokensHashes[0]}`;
    })
    .sort();
}

/**
 * A directly fed index: what the router must end up with. With a bridge's first event id, it numbers
 * events like that bridge (an opening `cleared`, then the translated events); otherwise from 0.
 */
export class ReferenceIndex {
  readonly index = new RadixIndex();
  private readonly translators = new Map<string, VllmEventTranslator>();

  constructor(private readonly bridgeFirstEventId?: bigint) {}

  feed(workerId: bigint, batch: VllmEventBatch): void {
    this.feedRank(workerId, 0, batch);
  }

  feedRank(workerId: bigint, dpRank: number, batch: VllmEventBatch): void {
    for (const event of this.translator(workerId, dpRank).translateBatch({
      ...batch,
      unknownEvents: 0,
      invalidEvents: 0,
    }))
      this.index.apply(event);
  }

  private translator(workerId: bigint, dpRank: number): VllmEventTranslator {
    const key = `${workerId}/${dpRank}`;
    let t = this.translators.get(key);
    if (!t) {
      const first = this.bridgeFirstEventId;
      t = new VllmEventTranslator({
        workerId,
        dpRank,
        blockSize: BLOCK_SIZE,
        log: quiet,
        ...(first === undefined ? {} : { firstEventId: first }),
      });
      this.translators.set(key, t);
      if (first !== undefined) this.index.apply(t.cleared());
    }
    return t;
  }

  lastEventId(workerId: bigint): bigint | undefined {
    return this.index.lastEventId(workerId, 0);
  }
}

/** A connection to `server`, or to another address of it (e.g. a `TcpProxy` in front of it). */
export function connectNats(server: NatsServer, url = server.url): Promise<NatsConnection> {
  return connectEventPlane(url, { reconnectTimeWait: 100, pingInterval: 2_000, ignoreClusterUpdates: true });
}

let namespaces = 0;
export function freshNamespace(): string {
  return `test${process.pid}x${namespaces++}`;
}

/** An encoded batch ready to send, and how many events it holds. */
export interface PreparedBatch {
  readonly payload: Uint8Array;
  readonly events: number;
}

/** A simulated vLLM worker (ZeroMQ publisher with replay) and its bridge onto NATS. */
export class SimulatedWorker {
  reference!: ReferenceIndex;
  /** Batches published. */
  published = 0;
  /** Events in them. */
  publishedEvents = 0;
  /** Every batch published, in order (what a bridge started now would read back from the replay socket). */
  readonly history: VllmEventBatch[] = [];
  private constructor(
    readonly workerId: bigint,
    public source: EngineEventSource,
    public zmq: ZmqEventPublisher,
    public bridge: KvEventBridge,
    readonly nc: NatsConnection,
    readonly endpoints: { endpoint: string; replayEndpoint: string },
    private readonly namespace: string,
  ) {
    this.rebase();
  }

  /** A reference numbered like the current bridge, fed with the whole history. */
  private rebase(): void {
    this.reference = new ReferenceIndex(this.bridge.firstEventId);
    this.reference.feed(this.workerId, { ts: 0, events: [], dataParallelRank: 0 });
    for (const batch of this.history) this.reference.feed(this.workerId, batch);
  }

  /** Stops the bridge, runs `whileDown`, and starts a new bridge (default options) under the same worker id. */
  async restartBridge(whileDown: () => Promise<void> = async () => undefined): Promise<void> {
    await this.bridge.close();
    await whileDown();
    this.bridge = await startBridge(this.nc, this.namespace, this.workerId, this.endpoints, false);
    this.rebase();
  }

  /** Restarts the whole worker: a new vLLM publisher (empty cache, sequence from 0) with `seed`, and a new bridge. */
  async restartWorker(seed: number): Promise<void> {
    await this.bridge.close();
    await this.zmq.close();
    this.history.length = 0;
    this.source = new EngineEventSource({ blockSize: BLOCK_SIZE, numGpuBlocks: 256, seed });
    this.zmq = await ZmqEventPublisher.open({ ...this.endpoints, bind: true });
    this.bridge = await startBridge(this.nc, this.namespace, this.workerId, this.endpoints, false);
    this.rebase();
  }

  static async start(
    server: NatsServer,
    namespace: string,
    workerId: bigint,
    seed = 1,
    shape: { capacityBlocks?: number; durable?: boolean } = {},
  ): Promise<SimulatedWorker> {
    const endpoints = {
      endpoint: `tcp://127.0.0.1:${await freePort()}`,
      replayEndpoint: `tcp://127.0.0.1:${await freePort()}`,
    };
    const zmq = await ZmqEventPublisher.open({ ...endpoints, bind: true });
    const nc = await connectNats(server);
    const bridge = await startBridge(nc, namespace, workerId, endpoints, shape.durable ?? false);
    const source = new EngineEventSource({ blockSize: BLOCK_SIZE, numGpuBlocks: shape.capacityBlocks ?? 256, seed });
    return new SimulatedWorker(workerId, source, zmq, bridge, nc, endpoints, namespace);
  }

  /** Publishes batches holding at least `n` events in all, and feeds them to the reference index too. */
  async publishEvents(n: number): Promise<void> {
    for (const target = this.publishedEvents + n; this.publishedEvents < target;)
      await this.publishBatch(this.source.nextBatch(Date.now() / 1000));
  }

  /** Publishes one batch and feeds it to the reference index too. */
  async publishBatch(batch: VllmEventBatch): Promise<void> {
    this.record(batch);
    await this.zmq.publish(batch);
    this.published++;
    this.publishedEvents += batch.events.length;
  }

  /** Generates and encodes batches holding at least `events` events (feeding the reference) without sending them. */
  prepare(events: number): PreparedBatch[] {
    const out: PreparedBatch[] = [];
    for (let total = 0; total < events;) {
      const batch = this.source.nextBatch(Date.now() / 1000);
      this.record(batch);
      out.push({ payload: encodeVllmEventBatch({ ...batch, dataParallelRank: 0 }), events: batch.events.length });
      total += batch.events.length;
    }
    return out;
  }

  private record(batch: VllmEventBatch): void {
    this.history.push(batch);
    this.reference.feed(this.workerId, batch);
  }

  /** Sends prepared batches. */
  async send(batches: readonly PreparedBatch[]): Promise<void> {
    for (const { payload, events } of batches) {
      await this.zmq.publishPayload(payload);
      this.published++;
      this.publishedEvents += events;
    }
  }

  async close(): Promise<void> {
    await this.bridge.close();
    await this.zmq.close();
    await this.nc.close();
  }
}

function startBridge(
  nc: NatsConnection,
  namespace: string,
  workerId: bigint,
  endpoints: { endpoint: string; replayEndpoint: string },
  durable: boolean,
): Promise<KvEventBridge> {
  return KvEventBridge.start({
    nc,
    namespace,
    component: "backend",
    blockSize: BLOCK_SIZE,
    worker: { workerId, ...endpoints },
    log: quiet,
    durable,
  });
}

export async function startRouter(
  server: NatsServer,
  namespace: string,
  durableConsumer?: string,
  url?: string,
): Promise<{ router: KvEventSubscriber; nc: NatsConnection }> {
  const nc = await connectNats(server, url);
  const router = await KvEventSubscriber.start({
    ...(durableConsumer === undefined ? {} : { durableConsumer }),
    nc,
    namespace,
    component: "backend",
    recovery: { attemptTimeoutMs: 2_000, initialBackoffMs: 50 },
    log: quiet,
  });
  return { router, nc };
}

/** Waits until the router holds every event the worker's reference saw, with no recovery running. */
export async function converged(router: KvEventSubscriber, worker: SimulatedWorker, timeoutMs = 20_000): Promise<void> {
  await waitForDescribed(
    () =>
      router.recovering === 0 &&
      router.index.lastEventId(worker.workerId, 0) === worker.bridge.lastEventId(0) &&
      worker.bridge.lastEventId(0) !== null &&
      worker.bridge.lastEventId(0) === worker.reference.lastEventId(worker.workerId),
    () =>
      `router to catch up with worker ${worker.workerId} (router last ${router.index.lastEventId(worker.workerId, 0)}, recovering ${router.recovering}, ` +
      `bridge last ${worker.bridge.lastEventId(0)}, reference last ${worker.reference.lastEventId(worker.workerId)}, zmq ${JSON.stringify(worker.bridge.zmqStats)}, router ${JSON.stringify(router.stats)})`,
    timeoutMs,
  );
}

async function waitForDescribed(condition: () => boolean, describe: () => string, timeoutMs: number): Promise<void> {
  try {
    await waitFor(condition, "convergence", timeoutMs);
  } catch {
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${describe()}`);
  }
}
