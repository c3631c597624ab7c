import { RadixIndex, workerRankKey, type RouterEvent, type WorkerRank, type WorkerRankKey } from "@dynamo/kv-indexer";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { ensureKvEventStream } from "./jetstream.js";
import { KvEventPublisher } from "./publisher.js";
import { VllmEventIngest, type VllmPublisherQuirks } from "../vllm/ingest.js";
import { RateLimitedLog, type LogSink } from "../log.js";
import { RangeProtocolError, answerRangeQuery, decodeRangeQuery, encodeRangeAnswer } from "./range-protocol.js";
import { RingBuffer } from "../ring-buffer.js";
import { workerQuerySubject } from "./subjects.js";
import { ZmqEventSubscriber, type ZmqEventSubscriberOptions, type ZmqWorkerEndpoints } from "../zmq/subscriber.js";

/** Events a bridge keeps per worker rank for range queries (Dynamo's `WORKER_KV_INDEXER_BUFFER_SIZE`). */
export const BRIDGE_BUFFER_SIZE = 1024;

let lastDefaultFirstEventId = 0n;

/**
 * A first event id above the ids of any earlier bridge: wall-clock milliseconds × 1 000 (about 1.8e15 in
 * 2026, below 2^53), strictly increasing within a process. It stays above a predecessor's ids as long as
 * that bridge published fewer than 1 000 events per millisecond it ran and the clock did not step back by
 * more than the time between the two starts.
 */
export function defaultFirstEventId(now = Date.now()): bigint {
  let id = BigInt(now) * 1000n;
  if (id <= lastDefaultFirstEventId) id = lastDefaultFirstEventId + 1000n;
  lastDefaultFirstEventId = id;
  return id;
}

export interface KvEventBridgeOptions {
  readonly nc: NatsConnection;
  readonly namespace: string;
  readonly component: string;
  /** The router's block size. */
  readonly blockSize: number;
  /** The worker's vLLM ZeroMQ endpoints. */
  readonly worker: ZmqWorkerEndpoints;
  readonly quirks?: VllmPublisherQuirks;
  /** Router events kept per rank for range queries. Default 1 024. */
  readonly bufferSize?: number;
  readonly zmq?: ZmqEventSubscriberOptions;
  readonly log?: LogSink;
  /**
   * Id of each rank's first router event (the `cleared` that opens its stream). Default
   * `defaultFirstEventId()`: wall-clock based, so a bridge restarted under the same worker id numbers above
   * its predecessor. With an explicit id, keep it above every id published before under this worker id,
   * or routers drop the new events as duplicates.
   */
  readonly firstEventId?: bigint;
  /** Durable mode: make sure the component's JetStream stream exists, so published events are kept. */
  readonly durable?: boolean;
}

export interface KvEventBridgeStats {
  /** Router events published on NATS. */
  published: number;
  /** Publishes that failed (connection closed); routers recover them through range queries. */
  publishFailures: number;
  /** Range queries answered, by kind. */
  answered: { events: number; tree_dump: number; too_new: number };
  /** Range queries that could not be parsed. */
  badQueries: number;
}

interface RankLog {
  readonly buffer: RingBuffer<RouterEvent>;
  lastEventId: bigint | null;
}

/**
 * Turns one worker's vLLM ZeroMQ event stream into router events on NATS
 * (`namespace.{ns}.component.{comp}.kv-events`), numbered per `(worker, DP rank)`, and serves range
 * queries on `worker_kv_indexer_query_dp{rank}.{workerId}` from a ring buffer of the last events, or
 * with a dump of its own index when the buffer no longer reaches back far enough.
 */
export class KvEventBridge {
  readonly stats: KvEventBridgeStats = {
    published: 0,
    publishFailures: 0,
    answered: { events: 0, tree_dump: 0, too_new: 0 },
    badQueries: 0,
  };
  /** The bridge's own index of the worker (device tier), the source of tree dumps. */
  readonly index = new RadixIndex({ trackEventIds: false });
  readonly ingest: VllmEventIngest;
  /** Id of the `cleared` event that opens each rank's stream. */
  readonly firstEventId: bigint;
  private readonly ranks = new Map<WorkerRankKey, RankLog>();
  private readonly subscriptions: Subscription[] = [];
  private readonly publisher: KvEventPublisher;
  private readonly zmq: ZmqEventSubscriber;
  private readonly log: RateLimitedLog;

  private constructor(private readonly options: KvEventBridgeOptions) {
    this.publisher = new KvEventPublisher(options.nc, options.namespace, options.component);
    this.log = new RateLimitedLog(options.log);
    const quirks = options.quirks ?? {};
    this.firstEventId = options.firstEventId ?? defaultFirstEventId();
    this.ingest = new VllmEventIngest(
      {
        blockSize: options.blockSize,
        quirks: () => quirks,
        firstEventId: this.firstEventId,
        ...(options.log ? { log: options.log } : {}),
      },
      (event, rank) => this.forward(event, rank),
    );
    this.zmq = new ZmqEventSubscriber(this.ingest, { ...(options.log ? { log: options.log } : {}), ...options.zmq });
  }

  /**
   * Starts answering range queries, opens each rank's stream with a `cleared` event (whatever routers
   * knew of this worker rank before is void: this bridge's index starts empty), then subscribes to the
   * worker's ZeroMQ stream.
   */
  static async start(options: KvEventBridgeOptions): Promise<KvEventBridge> {
    if (options.durable) await ensureKvEventStream(options.nc, options.namespace, options.component);
    const bridge = new KvEventBridge(options);
    const ranks = options.worker.dpRanks ?? [0];
    for (const dpRank of ranks) {
      const subject = workerQuerySubject(options.namespace, options.component, options.worker.workerId, dpRank);
      bridge.subscriptions.push(
        options.nc.subscribe(subject, { callback: (_err, msg) => bridge.answer(dpRank, msg.string(), msg.reply) }),
      );
    }
    for (const dpRank of ranks) {
      const rank = { workerId: options.worker.workerId, dpRank };
      bridge.forward(bridge.ingest.translator(rank).cleared(), rank);
    }
    await options.nc.flush();
    await bridge.zmq.addWorker(options.worker);
    return bridge;
  }

  /** ZeroMQ-side counters (gaps, replays, restarts, malformed frames). */
  get zmqStats(): ZmqEventSubscriber["stats"] {
    return this.zmq.stats;
  }

  /** Newest event id of a rank, or null before its first event. */
  lastEventId(dpRank: number): bigint | null {
    return this.ranks.get(workerRankKey(this.options.worker.workerId, dpRank))?.lastEventId ?? null;
  }

  async close(): Promise<void> {
    await this.zmq.close();
    for (const sub of this.subscriptions) sub.unsubscribe();
  }

  private rankLog(rank: WorkerRank): RankLog {
    const key = workerRankKey(rank.workerId, rank.dpRank);
    let log = this.ranks.get(key);
    if (!log)
      this.ranks.set(
        key,
        (log = { buffer: new RingBuffer(this.options.bufferSize ?? BRIDGE_BUFFER_SIZE), lastEventId: null }),
      );
    return log;
  }

  private forward(event: RouterEvent, rank: WorkerRank): void {
    const log = this.rankLog(rank);
    log.buffer.push(event);
    log.lastEventId = event.eventId;
    if (event.storageTier === "device") this.index.apply(event);
    try {
      this.publisher.publish(event);
      this.stats.published++;
    } catch (err) {
      this.stats.publishFailures++;
      this.log.warn(
        "publish",
        `kv-events bridge: worker ${rank.workerId} dp_rank ${rank.dpRank}: publish failed: ${(err as Error).message}`,
      );
    }
  }

  private answer(dpRank: number, request: string, reply: string | undefined): void {
    if (!reply) return;
    try {
      const query = decodeRangeQuery(request);
      const log = this.rankLog({ workerId: this.options.worker.workerId, dpRank });
      const answer = answerRangeQuery(log.buffer, log.lastEventId, query, () => this.dumpRank(dpRank));
      this.stats.answered[answer.kind]++;
      const maxBytes = Math.max(4096, Math.floor((this.options.nc.info?.max_payload ?? 1 << 20) * 0.8));
      for (const chunk of encodeRangeAnswer(answer, maxBytes)) this.options.nc.publish(reply, chunk);
    } catch (err) {
      const what = err instanceof RangeProtocolError ? "bad range query" : "could not answer a range query";
      if (err instanceof RangeProtocolError) this.stats.badQueries++;
      this.log.warn(
        "query",
        `kv-events bridge: worker ${this.options.worker.workerId} dp_rank ${dpRank}: ${what}: ${(err as Error).message}`,
      );
    }
  }

  private dumpRank(dpRank: number): RouterEvent[] {
    return this.index.dump().filter((e) => e.dpRank === dpRank);
  }
}
