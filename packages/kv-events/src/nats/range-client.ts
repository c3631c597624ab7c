import { createInbox, type NatsConnection } from "@nats-io/transport-node";
import { decodeRangeAnswerChunk, encodeRangeQuery, type RangeAnswer, type RangeQuery } from "./range-protocol.js";

/** Runs at most `limit` tasks at once; the others wait in FIFO order. */
export class ConcurrencyLimit {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await task();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

/**
 * Sends one range query and collects its reply chunks until the final one. Rejects on timeout, when no
 * bridge listens on the subject, or on a reply that is not in the protocol's shape.
 */
export async function queryEventRange(
  nc: NatsConnection,
  subject: string,
  query: RangeQuery,
  timeoutMs: number,
): Promise<RangeAnswer> {
  const inbox = createInbox();
  const sub = nc.subscribe(inbox);
  const timer = setTimeout(() => sub.unsubscribe(), timeoutMs);
  try {
    nc.publish(subject, encodeRangeQuery(query), { reply: inbox });
    let kind: RangeAnswer["kind"] | undefined;
    let lastEventId: bigint | null = null;
    const events: RangeAnswer["events"][number][] = [];
    for await (const msg of sub) {
      if (msg.data.length === 0 && msg.headers?.code === 503) throw new Error(`no bridge answers on ${subject}`);
      const chunk = decodeRangeAnswerChunk(msg.string());
      kind = chunk.kind;
      lastEventId = chunk.lastEventId;
      for (const e of chunk.events) events.push(e);
      if (chunk.final) return { kind, lastEventId, events };
    }
    throw new Error(`no complete answer on ${subject} within ${timeoutMs} ms`);
  } finally {
    clearTimeout(timer);
    sub.unsubscribe();
  }
}
