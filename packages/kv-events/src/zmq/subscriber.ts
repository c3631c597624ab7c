import { Dealer, Subscriber } from "zeromq";
import type { WorkerRank } from "@dynamo/kv-indexer";
import { RateLimitedLog, type LogSink } from "../log.js";
import { coversRange, consecutiveRun, continuity, samePayload, type ReplayedBatch } from "./sequence-gaps.js";
import { REPLAY_END_SEQ, decodeSeq, encodeSeq, endpointForRank } from "./wire.js";

/** One worker's vLLM KV-event endpoints. */
export interface ZmqWorkerEndpoints {
  readonly workerId: bigint;
  /** PUB endpoint of DP rank 0, e.g. `tcp://10.0.0.7:5557`; rank r is dialled at port + r. */
  readonly endpoint: string;
  /** ROUTER replay endpoint of DP rank 0 (rank r at port + r); none: gaps cannot be replayed. */
  readonly replayEndpoint?: string;
  /** Data-parallel ranks to subscribe to. Default `[0]`. */
  readonly dpRanks?: readonly number[];
  /** Explicit PUB endpoint of each rank of `dpRanks` (same order), instead of deriving it from `endpoint`. */
  readonly rankEndpoints?: readonly string[];
  /** Explicit replay endpoint of each rank of `dpRanks` (same order). */
  readonly rankReplayEndpoints?: readonly string[];
  /** Topic prefix to subscribe to. Default `""` (everything). */
  readonly topic?: string;
}

/** Where a delivered batch came from. */
export interface ZmqBatchInfo {
  readonly seq: bigint;
  readonly topic: string;
  /** True when the batch was fetched from the replay socket rather than received live. */
  readonly replayed: boolean;
}

/** Why the subscriber tells its consumer to forget a worker rank's state. */
export type ZmqResetReason = "publisher_restart" | "gap_not_recovered";

/** Consumer of a subscriber: batches arrive in sequence order per worker rank. */
export interface ZmqBatchHandler {
  onBatch(rank: WorkerRank, payload: Uint8Array, info: ZmqBatchInfo): void;
  /** The rank's state is unknown from here on: drop it and let it re-warm. */
  onReset(rank: WorkerRank, reason: ZmqResetReason): void;
}

export interface ZmqEventSubscriberOptions {
  /** How long one replay request may take before the gap counts as not recovered. Default 2 000 ms. */
  readonly replayTimeoutMs?: number;
  /** Reconnect interval of the SUB sockets. Default 100 ms. */
  readonly reconnectIntervalMs?: number;
  /** Messages a SUB socket queues before ZeroMQ drops (gaps are then replayed). Default 100 000. */
  readonly receiveHighWaterMark?: number;
  /** How long `synced` waits for a rank's first connection and replay. Default 2 000 ms. */
  readonly syncTimeoutMs?: number;
  readonly log?: LogSink;
}

export interface ZmqSubscriberStats {
  /** Valid messages received live. */
  messages: number;
  /** Messages dropped for their framing (frame count, sequence frame length). */
  malformedFrames: number;
  /** Sequence gaps seen. */
  gaps: number;
  /** Batches delivered from replay. */
  replayedBatches: number;
  /** Gaps that replay could not fill (rank reset). */
  unrecoveredGaps: number;
  /** Sequence resets seen (rank reset). */
  publisherRestarts: number;
}

/**
 * Asks a vLLM replay ROUTER for every buffered batch with `seq ≥ startSeq` (DEALER client, both reply
 * shapes). `complete` is false when the end marker did not arrive in time.
 */
export async function requestReplay(
  endpoint: string,
  startSeq: bigint,
  timeoutMs: number,
): Promise<{ batches: ReplayedBatch[]; complete: boolean }> {
  const dealer = new Dealer({ linger: 0, receiveTimeout: timeoutMs });
  const batches: ReplayedBatch[] = [];
  const deadline = Date.now() + timeoutMs;
  try {
    dealer.connect(endpoint);
    await dealer.send([Buffer.alloc(0), encodeSeq(startSeq)]);
    while (Date.now() < deadline) {
      dealer.receiveTimeout = Math.max(1, deadline - Date.now());
      const frames = await dealer.receive();
      // After the empty delimiter: [seq, payload] (older vLLM) or [topic, seq, payload] (newer).
      const body = frames[0]?.byteLength === 0 ? frames.slice(1) : frames;
      const [topic, seqFrame, payload] = body.length === 3 ? body : [undefined, body[0], body[1]];
      const seq = seqFrame === undefined ? null : decodeSeq(seqFrame);
      if ((body.length !== 2 && body.length !== 3) || seq === null || payload === undefined) continue;
      if (seq === REPLAY_END_SEQ) return { batches, complete: true };
      batches.push({ seq, topic: topic?.toString("utf8") ?? "", payload });
    }
  } catch (err) {
    if ((err as { code?: string }).code !== "EAGAIN") throw err;
  } finally {
    dealer.close();
  }
  return { batches, complete: false };
}

/** One SUB socket for one worker rank, with its own sequence cursor. */
class RankSubscription {
  private readonly socket: Subscriber;
  /** Sequence number and payload of the last batch delivered; the payload tells a restarted publisher from lost messages. */
  private lastSeq: bigint | null = null;
  private lastPayload: Uint8Array | null = null;
  /** Batches up to this seq came from a replay fetched on (re)connection: the same ones arriving live are duplicates. */
  private replayedUpTo: bigint | null = null;
  /** The connection dropped and the stream has not been checked against the replay socket since. */
  private reconnected = false;
  private readonly loop: Promise<void>;
  private readonly watch: Promise<void>;
  /** Message handling and connection-triggered replays run one after the other, in this chain. */
  private serial: Promise<void> = Promise.resolve();
  private closed = false;
  /**
   * Settles once the history the replay socket held at the first connection has been delivered (or could not
   * be fetched), after `syncTimeoutMs` if the publisher cannot be reached, and at once without a replay socket.
   */
  readonly synced: Promise<void>;
  private markSynced: () => void = () => undefined;

  constructor(
    readonly rank: WorkerRank,
    private readonly endpoint: string,
    private readonly replayEndpoint: string | undefined,
    topic: string,
    private readonly owner: ZmqEventSubscriber,
  ) {
    this.socket = new Subscriber({
      linger: 0,
      reconnectInterval: owner.reconnectIntervalMs,
      receiveHighWaterMark: owner.receiveHighWaterMark,
    });
    this.socket.subscribe(topic);
    let settle!: () => void;
    this.synced = new Promise<void>((resolve) => (settle = resolve));
    if (replayEndpoint === undefined) settle();
    else {
      const timer = setTimeout(settle, owner.syncTimeoutMs);
      timer.unref();
      this.markSynced = () => {
        clearTimeout(timer);
        settle();
      };
    }
    this.watch = this.watchConnection(); // before connecting, or the first events are missed
    this.socket.connect(endpoint);
    this.loop = this.run();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.markSynced();
    this.socket.close();
    await Promise.all([this.loop, this.watch]);
  }

  private async watchConnection(): Promise<void> {
    const events = this.socket.events;
    try {
      for await (const event of events) {
        if (event.type === "disconnect") {
          this.reconnected = true;
          this.replayedUpTo = null;
        } else if (event.type === "connect") {
          void this.inOrder(() => this.onConnect());
        }
      }
    } catch {
      // the socket was closed
    }
  }

  private inOrder(task: () => Promise<void>): Promise<void> {
    const next = this.serial.then(task);
    this.serial = next.catch((err: unknown) =>
      this.owner.warn("handler", `${this.label()}: ${(err as Error).message}`),
    );
    return this.serial;
  }

  /**
   * On every (re)connection, fetch from the replay socket what may have been published while the SUB was
   * not connected: a quiet publisher would otherwise leave the rank behind until its next batch.
   */
  private async onConnect(): Promise<void> {
    try {
      await this.replayOnConnect();
    } finally {
      this.markSynced(); // the first connection's history is in (or could not be fetched)
    }
  }

  private async replayOnConnect(): Promise<void> {
    if (this.replayEndpoint === undefined || this.closed) return;
    if (this.lastSeq === null) {
      const reply = await this.fetch(0n);
      if (reply === null || this.lastSeq !== null || this.closed) return;
      this.deliverRun(reply.batches, null);
      return;
    }
    if (!this.reconnected) return;
    const last = this.lastSeq;
    const reply = await this.fetch(last);
    if (reply === null || this.closed || this.lastSeq !== last) return;
    const verdict = continuity(reply, last, this.lastPayload);
    if (verdict === "same") {
      this.reconnected = false;
      this.deliverRun(
        reply.batches.filter((b) => b.seq > last),
        last,
      );
    } else if (verdict === "restarted") {
      await this.restart(
        `its replay from ${last} does not hold the batch ${last} received before the disconnection`,
        null,
      );
    }
    // "unknown": the next live batch decides.
  }

  private async run(): Promise<void> {
    try {
      for await (const frames of this.socket) {
        if (this.closed) break;
        await this.inOrder(() => this.handle(frames));
      }
    } catch (err) {
      if (!this.closed) this.owner.warn("socket", `${this.label()}: SUB socket failed: ${(err as Error).message}`);
    }
  }

  private label(): string {
    return `worker ${this.rank.workerId} dp_rank ${this.rank.dpRank} (${this.endpoint})`;
  }

  private async handle(frames: Buffer[]): Promise<void> {
    const stats = this.owner.stats;
    const seq = frames.length === 3 ? decodeSeq(frames[1]!) : null;
    if (seq === null) {
      stats.malformedFrames++;
      const detail =
        frames.length === 3 ? `sequence frame of ${frames[1]!.byteLength} bytes` : `${frames.length} frame(s)`;
      this.owner.warn("frames", `${this.label()}: dropped a message with ${detail}`);
      return;
    }
    stats.messages++;
    if (this.replayedUpTo !== null) {
      if (seq <= this.replayedUpTo) return;
      this.replayedUpTo = null;
    }
    const last = this.lastSeq;
    if (last === null) {
      if (seq > 0n) await this.catchUp(0n, seq, false);
    } else if (seq <= last) {
      await this.restart(`sequence went from ${last} back to ${seq}`, seq);
    } else if (seq > last + 1n || this.reconnected) {
      await this.resume(last, seq);
    }
    if (this.closed) return;
    this.deliver({ seq, topic: frames[0]!.toString("utf8"), payload: frames[2]! }, false);
  }

  /**
   * Live batch `seq` follows a gap or a reconnection: replay from `last` (the batch already held, to check
   * that the publisher did not restart), then deliver `[last + 1, seq)`. A publisher whose replay holds
   * other bytes for `last` restarted; a gap the replay does not cover resets the rank.
   */
  private async resume(last: bigint, seq: bigint): Promise<void> {
    const stats = this.owner.stats;
    const gap = seq > last + 1n;
    if (gap) stats.gaps++;
    const reply = this.replayEndpoint === undefined ? null : await this.fetch(last);
    if (this.closed) return;
    const held = reply?.batches.find((b) => b.seq === last);
    if (held && this.lastPayload !== null && !samePayload(held.payload, this.lastPayload)) {
      await this.restart(
        `sequence jumped from ${last} to ${seq} and the replay holds another batch ${last} than the one received`,
        seq,
      );
      return;
    }
    this.reconnected = false;
    if (!gap) return;
    const batches = (reply?.batches ?? []).filter((b) => b.seq > last && b.seq < seq);
    if (!coversRange(batches, last + 1n, seq)) {
      stats.unrecoveredGaps++;
      this.owner.warn(
        "gap",
        `${this.label()}: batches ${last + 1n}..${seq - 1n} lost and not replayable: clearing the rank`,
      );
      this.owner.handler.onReset(this.rank, "gap_not_recovered");
    }
    this.deliverReplayed(batches);
  }

  /** The publisher restarted: reset the rank and catch up with its new stream from 0 (up to `until`, or all of it). */
  private async restart(why: string, until: bigint | null): Promise<void> {
    this.owner.stats.publisherRestarts++;
    this.owner.warn("restart", `${this.label()}: ${why}: publisher restarted, clearing the rank`);
    this.owner.handler.onReset(this.rank, "publisher_restart");
    this.lastSeq = null;
    this.lastPayload = null;
    this.reconnected = false;
    if (until !== null) {
      if (until > 0n) await this.catchUp(0n, until, false);
      return;
    }
    const reply = this.replayEndpoint === undefined ? null : await this.fetch(0n);
    if (reply !== null && !this.closed) this.deliverRun(reply.batches, null);
  }

  /** The replay socket's batches from `from` on, in order; null when the request failed. */
  private async fetch(from: bigint): Promise<{ batches: ReplayedBatch[]; complete: boolean } | null> {
    try {
      const reply = await requestReplay(this.replayEndpoint!, from, this.owner.replayTimeoutMs);
      const batches = reply.batches
        .filter((b) => b.seq >= from)
        .sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
      return { batches, complete: reply.complete };
    } catch (err) {
      this.owner.warn("replay", `${this.label()}: replay from ${from} failed: ${(err as Error).message}`);
      return null;
    }
  }

  /**
   * Delivers batches `[from, until)` from the replay socket. When `mustCover` and the replay does not hold
   * the whole range (or there is no replay socket), the rank is reset first, then whatever was replayed
   * is delivered.
   */
  private async catchUp(from: bigint, until: bigint, mustCover: boolean): Promise<void> {
    const stats = this.owner.stats;
    const reply = this.replayEndpoint === undefined ? null : await this.fetch(from);
    const batches = (reply?.batches ?? []).filter((b) => b.seq < until);
    if (this.closed) return;
    if (mustCover && !coversRange(batches, from, until)) {
      stats.unrecoveredGaps++;
      this.owner.warn(
        "gap",
        `${this.label()}: batches ${from}..${until - 1n} lost and not replayable: clearing the rank`,
      );
      this.owner.handler.onReset(this.rank, "gap_not_recovered");
    }
    this.deliverReplayed(batches);
  }

  /**
   * Delivers the consecutive run at the start of `batches` (after `after`, when given) and marks it, so
   * that the same batches arriving live are dropped.
   */
  private deliverRun(batches: readonly ReplayedBatch[], after: bigint | null): void {
    const run = consecutiveRun(batches, after);
    if (run.length === 0) return;
    this.deliverReplayed(run);
    this.replayedUpTo = run.at(-1)!.seq;
  }

  private deliverReplayed(batches: readonly ReplayedBatch[]): void {
    for (const batch of batches) {
      if (this.lastSeq !== null && batch.seq <= this.lastSeq) continue;
      this.owner.stats.replayedBatches++;
      this.deliver(batch, true);
    }
  }

  private deliver(batch: ReplayedBatch, replayed: boolean): void {
    this.lastSeq = batch.seq;
    this.lastPayload = batch.payload;
    this.owner.handler.onBatch(this.rank, batch.payload, { seq: batch.seq, topic: batch.topic, replayed });
  }
}

/**
 * Subscribes to the vLLM KV-event PUB sockets of many workers (one SUB per worker rank, dialled at
 * port + rank), validates the 3-frame messages, and delivers payloads in sequence order. Gaps are
 * replayed from the worker's ROUTER replay socket when configured, and so is whatever was published
 * while a SUB was disconnected. A gap that cannot be replayed, or a publisher restart (the sequence goes
 * back, or the replay holds another last batch than the one received), resets the rank. ZeroMQ
 * reconnects by itself when a publisher goes away and comes back.
 */
export class ZmqEventSubscriber {
  readonly stats: ZmqSubscriberStats = {
    messages: 0,
    malformedFrames: 0,
    gaps: 0,
    replayedBatches: 0,
    unrecoveredGaps: 0,
    publisherRestarts: 0,
  };
  readonly replayTimeoutMs: number;
  readonly reconnectIntervalMs: number;
  readonly receiveHighWaterMark: number;
  readonly syncTimeoutMs: number;
  private readonly subscriptions = new Map<bigint, RankSubscription[]>();
  private readonly log: RateLimitedLog;

  constructor(
    readonly handler: ZmqBatchHandler,
    options: ZmqEventSubscriberOptions = {},
  ) {
    this.replayTimeoutMs = options.replayTimeoutMs ?? 2_000;
    this.reconnectIntervalMs = options.reconnectIntervalMs ?? 100;
    this.receiveHighWaterMark = options.receiveHighWaterMark ?? 100_000;
    this.syncTimeoutMs = options.syncTimeoutMs ?? 2_000;
    this.log = new RateLimitedLog(options.log);
  }

  /** Starts listening to every rank of a worker (replacing an earlier subscription of the same worker id). */
  async addWorker(worker: ZmqWorkerEndpoints): Promise<void> {
    await this.removeWorker(worker.workerId);
    const ranks = worker.dpRanks ?? [0];
    this.subscriptions.set(
      worker.workerId,
      ranks.map(
        (dpRank, i) =>
          new RankSubscription(
            { workerId: worker.workerId, dpRank },
            worker.rankEndpoints?.[i] ?? endpointForRank(worker.endpoint, dpRank),
            worker.rankReplayEndpoints?.[i] ??
              (worker.replayEndpoint === undefined ? undefined : endpointForRank(worker.replayEndpoint, dpRank)),
            worker.topic ?? "",
            this,
          ),
      ),
    );
  }

  /**
   * Resolves once every rank of the worker holds what its replay socket had when the subscription first
   * connected (a starting router's warm index), or after `syncTimeoutMs` for a publisher that cannot be reached;
   * at once for ranks without a replay socket or an unknown worker.
   */
  async synced(workerId: bigint): Promise<void> {
    await Promise.all((this.subscriptions.get(workerId) ?? []).map((s) => s.synced));
  }

  /** Stops listening to a worker; batches already queued for it are not delivered. */
  async removeWorker(workerId: bigint): Promise<void> {
    const subs = this.subscriptions.get(workerId);
    if (!subs) return;
    this.subscriptions.delete(workerId);
    await Promise.all(subs.map((s) => s.close()));
  }

  get workerIds(): bigint[] {
    return [...this.subscriptions.keys()];
  }

  async close(): Promise<void> {
    await Promise.all(this.workerIds.map((id) => this.removeWorker(id)));
  }

  /** @internal rate-limited warning, used by the rank subscriptions. */
  warn(key: string, message: string): void {
    this.log.warn(key, `kv-events zmq: ${message}`);
  }
}
