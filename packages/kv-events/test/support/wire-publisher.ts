import { freePort, waitFor } from "@dynamo/testkit";
import { Router, XPublisher } from "zeromq";
import { REPLAY_END_SEQ, encodeSeq } from "../../src/index.js";

/**
 * A hand-driven vLLM wire peer for tests: an XPUB (so a test can wait for the subscription to arrive)
 * and a ROUTER replay socket answering from `replayable` in the chosen reply shape. Live frames are sent
 * exactly as given, so tests can skip sequence numbers, restart sequences or send malformed frames.
 */
export class WirePublisher {
  /** Batches served on replay, by sequence number. */
  readonly replayable = new Map<bigint, Uint8Array>();
  replayRequests: bigint[] = [];
  /** Subscriptions (one per subscriber connection) and unsubscriptions (a subscriber went away) seen by the XPUB. */
  subscriptions = 0;
  unsubscriptions = 0;
  private readonly pub = new XPublisher({ linger: 0, verbosity: "allSubs" });
  private readonly router = new Router({ linger: 0 });
  private watching!: Promise<void>;
  private serving!: Promise<void>;

  private constructor(
    readonly endpoint: string,
    readonly replayEndpoint: string,
    private readonly shape: "with-topic" | "legacy",
    private readonly topic: string,
  ) {}

  static async start(
    shape: "with-topic" | "legacy" = "with-topic",
    topic = "kv@127.0.0.1:8000@model",
  ): Promise<WirePublisher> {
    const p = new WirePublisher(
      `tcp://127.0.0.1:${await freePort()}`,
      `tcp://127.0.0.1:${await freePort()}`,
      shape,
      topic,
    );
    await p.pub.bind(p.endpoint);
    await p.router.bind(p.replayEndpoint);
    p.watching = p.watchSubscriptions();
    p.serving = p.serve();
    return p;
  }

  /** Resolves once `count` subscriptions (the first by default) reached the XPUB. */
  waitForSubscriber(count = 1): Promise<void> {
    return waitFor(() => this.subscriptions >= count, `subscription ${count} to reach the publisher`);
  }

  get port(): number {
    return Number(this.endpoint.split(":").at(-1));
  }

  get replayPort(): number {
    return Number(this.replayEndpoint.split(":").at(-1));
  }

  /** Sends a well-formed message and keeps it for replay. */
  async send(seq: bigint, payload: Uint8Array, { live = true }: { live?: boolean } = {}): Promise<void> {
    this.replayable.set(seq, payload);
    if (live) await this.pub.send([this.topic, encodeSeq(seq), payload]);
  }

  /** Sends arbitrary frames. */
  async sendFrames(frames: Array<string | Uint8Array>): Promise<void> {
    await this.pub.send(frames);
  }

  async close(): Promise<void> {
    this.pub.close();
    this.router.close();
    await Promise.all([this.serving, this.watching]);
  }

  private async watchSubscriptions(): Promise<void> {
    try {
      for await (const [message] of this.pub) {
        if (message?.[0] === 1) this.subscriptions++;
        else if (message?.[0] === 0) this.unsubscriptions++;
      }
    } catch {
      // closed
    }
  }

  private async serve(): Promise<void> {
    try {
      for await (const [identity, , start] of this.router) {
        const from = new DataView(start!.buffer, start!.byteOffset, 8).getBigUint64(0);
        this.replayRequests.push(from);
        const seqs = [...this.replayable.keys()].filter((s) => s >= from).sort((a, b) => (a < b ? -1 : 1));
        for (const seq of seqs) {
          const body = [encodeSeq(seq), this.replayable.get(seq)!];
          await this.router.send(
            this.shape === "with-topic" ? [identity!, "", this.topic, ...body] : [identity!, "", ...body],
          );
        }
        const end = [encodeSeq(REPLAY_END_SEQ), ""];
        await this.router.send(this.shape === "with-topic" ? [identity!, "", "", ...end] : [identity!, "", ...end]);
      }
    } catch {
      // closed
    }
  }
}
