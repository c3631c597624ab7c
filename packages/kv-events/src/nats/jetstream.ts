import { AckPolicy, DeliverPolicy, jetstreamManager, jetstream, type ConsumerMessages } from "@nats-io/jetstream";
import { nanos, type NatsConnection } from "@nats-io/transport-node";
import { kvEventStreamName, kvEventSubject } from "./subjects.js";

/** Retention of the durable event stream (Dynamo: one hour). */
export const KV_EVENT_STREAM_MAX_AGE_MS = 3_600_000;

/**
 * Creates (or finds) the JetStream stream `namespace-{ns}-component-{comp}-kv-events` capturing the
 * component's event subject, so that events published on plain NATS are kept for late subscribers.
 */
export async function ensureKvEventStream(
  nc: NatsConnection,
  namespace: string,
  component: string,
  maxAgeMs = KV_EVENT_STREAM_MAX_AGE_MS,
): Promise<string> {
  const jsm = await jetstreamManager(nc);
  const name = kvEventStreamName(namespace, component);
  try {
    await jsm.streams.add({ name, subjects: [kvEventSubject(namespace, component)], max_age: nanos(maxAgeMs) });
  } catch (err) {
    // Already there with another configuration (e.g. another retention): use it as it is.
    await jsm.streams.info(name).catch(() => {
      throw err;
    });
  }
  return name;
}

/**
 * Consumes the component's event stream through the durable consumer `consumerName` (one per router
 * instance) from the first kept event, acknowledging each message once `handle` returned.
 */
export async function consumeKvEventStream(
  nc: NatsConnection,
  namespace: string,
  component: string,
  consumerName: string,
  handle: (text: string) => void,
): Promise<ConsumerMessages> {
  const stream = await ensureKvEventStream(nc, namespace, component);
  const jsm = await jetstreamManager(nc);
  await jsm.consumers.add(stream, {
    durable_name: consumerName,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
  });
  const consumer = await jetstream(nc).consumers.get(stream, consumerName);
  const messages = await consumer.consume();
  void (async () => {
    for await (const msg of messages) {
      handle(msg.string());
      msg.ack();
    }
  })();
  return messages;
}
