import { Publisher, Router } from "zeromq";
import { RateLimitedLog, type LogSink } from "../log.js";
import { RingBuffer } from "../ring-buffer.js";
import { encodeVllmEventBatch, type VllmEncodeOptions, type VllmEventBatch } from "../vllm/codec.js";
import { REPLAY_END_SEQ, decodeSeq, encodeSeq, endpointForRank, publisherBinds } from "./wire.js";

export interface ZmqEventPublisherOptions {
  /** PUB endpoint of data-parallel rank 0 (the rank's own is derived with `endpointForRank`). */
  readonly endpoint: string;
  /** ROUTER endpoint for replay requests (bound); none disables replay. */
  readonly replayEndpoint?: string;
  readonly dpRank?: number;
  /** Topic frame of every message. Default `""`. */
  readonly topic?: string;
  /** Batches kept for replay. Default 10 000. */
  readonly bufferSteps?: number;
  /** PUB high-water mark; messages beyond it are dropped by ZeroMQ. Default 100 000. */
  readonly hwm?: number;
  /** Sequence number of the first batch. Default 0 (llm-d-inference-sim starts at 1). */
  readonly firstSeq?: bigint;
  /** Replay reply framing: newer vLLM `[id, "", topic, seq, payload]` (default) or older `[id, "", seq, payload]`. */
  readonly replyShape?: "with-topic" | "legacy";
  /** Bind or connect the PUB socket; default vLLM's rule (`publisherBinds`). */
  readonly bind?: boolean;
  readonly log?: LogSink;
}

/**
 * A vLLM-compatible KV-event publisher: PUB socket with `[topic, seq, payload]` frames and an optional
 * ROUTER replay socket serving the last `bufferSteps` batches (for simulated workers and tests).
 */
export class ZmqEventPublisher {
  private readonly pub = new Publisher();
  private readonly router: Router | undefined;
  private readonly buffer: RingBuffer<{ seq: bigint; payload: Uint8Array }>;
  private readonly topic: Buffer;
  private seq: bigint;
  private sending: Promise<unknown> = Promise.resolve();
  private replayLoop: Promise<void> = Promise.resolve();
  private readonly log: RateLimitedLog;

  private constructor(private readonly options: ZmqEventPublisherOptions) {
    this.pub.sendHighWaterMark = options.hwm ?? 100_000;
    this.pub.linger = 0;
    this.buffer = new RingBuffer(options.bufferSteps ?? 10_000);
    this.topic = Buffer.from(options.topic ?? "", "utf8");
    this.seq = options.firstSeq ?? 0n;
    this.log = new RateLimitedLog(options.log);
    if (options.replayEndpoint !== undefined) {
      this.router = new Router();
      this.router.linger = 0;
    }
  }

  /** Opens the sockets (PUB bound or connected, ROUTER bound) and starts serving replay requests. */
  static async open(options: ZmqEventPublisherOptions): Promise<ZmqEventPublisher> {
    const publisher = new ZmqEventPublisher(options);
    const rank = options.dpRank ?? 0;
    const endpoint = endpointForRank(options.endpoint, rank);
    if (options.bind ?? publisherBinds(endpoint)) {
      await bindWithRetry(publisher.pub, endpoint);
    } else {
      publisher.pub.connect(endpoint);
    }
    if (publisher.router && options.replayEndpoint !== undefined) {
      const replay = endpointForRank(options.replayEndpoint, rank);
      await bindWithRetry(publisher.router, replay);
      publisher.replayLoop = publisher.serveReplay(publisher.router);
    }
    return publisher;
  }

  /** Sequence number the next batch will carry. */
  get nextSeq(): bigint {
    return this.seq;
  }

  /** Publishes one already encoded payload; resolves with its sequence number once handed to ZeroMQ. */
  publishPayload(payload: Uint8Array): Promise<bigint> {
    const seq = this.seq++;
    this.buffer.push({ seq, payload });
    const send = this.sending.then(() => this.pub.send([this.topic, encodeSeq(seq), payload]));
    this.sending = send.catch(() => undefined);
    return send.then(() => seq);
  }

  /** Encodes and publishes one batch (rank filled in from the options when the batch has none). */
  publish(batch: VllmEventBatch, encoding?: VllmEncodeOptions): Promise<bigint> {
    const withRank = batch.dataParallelRank === null ? { ...batch, dataParallelRank: this.options.dpRank ?? 0 } : batch;
    return this.publishPayload(encodeVllmEventBatch(withRank, encoding));
  }

  /** Closes both sockets (pending replay requests are abandoned). */
  async close(): Promise<void> {
    await this.sending;
    this.pub.close();
    this.router?.close();
    await this.replayLoop;
  }

  private async serveReplay(router: Router): Promise<void> {
    try {
      for await (const frames of router) {
        const [identity, delimiter, start] = frames;
        const startSeq = start === undefined ? null : decodeSeq(start);
        if (frames.length !== 3 || delimiter?.byteLength !== 0 || startSeq === null) {
          this.log.warn(
            "replay_request",
            `kv-events publisher: ignored a malformed replay request of ${frames.length} frame(s)`,
          );
          continue;
        }
        await this.answerReplay(router, identity!, startSeq);
      }
    } catch (err) {
      if (!router.closed)
        this.log.warn("replay_loop", `kv-events publisher: replay socket failed: ${(err as Error).message}`);
    }
  }

  private async answerReplay(router: Router, identity: Buffer, startSeq: bigint): Promise<void> {
    const withTopic = (this.options.replyShape ?? "with-topic") === "with-topic";
    const empty = Buffer.alloc(0);
    const from = this.buffer.lowerBound((entry) => entry.seq >= startSeq);
    const entries = [];
    for (let i = from; i < this.buffer.length; i++) entries.push(this.buffer.at(i)!);
    for (const { seq, payload } of entries) {
      const body = withTopic ? [this.topic, encodeSeq(seq), payload] : [encodeSeq(seq), payload];
      await router.send([identity, empty, ...body]);
    }
    const end = encodeSeq(REPLAY_END_SEQ);
    await router.send(withTopic ? [identity, empty, empty, end, empty] : [identity, empty, end, empty]);
  }
}

/** Binds, retrying for up to 2 s while the address is still held (a publisher restarting on its old port). */
async function bindWithRetry(socket: Publisher | Router, endpoint: string): Promise<void> {
  const deadline = Date.now() + 2_000;
  for (;;) {
    try {
      await socket.bind(endpoint);
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== "EADDRINUSE" || Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
