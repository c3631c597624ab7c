import type { RouterEvent } from "@dynamo/kv-indexer";
import type { NatsConnection } from "@nats-io/transport-node";
import { encodeRouterEventJson } from "./json-codec.js";
import { kvEventSubject } from "./subjects.js";

/** Publishes router events (JSON, Dynamo's serde shape) on `namespace.{ns}.component.{comp}.kv-events`. */
export class KvEventPublisher {
  readonly subject: string;

  constructor(
    private readonly nc: NatsConnection,
    namespace: string,
    component: string,
  ) {
    this.subject = kvEventSubject(namespace, component);
  }

  /** Fire-and-forget publish; throws only when the connection is closed. */
  publish(event: RouterEvent): void {
    this.nc.publish(this.subject, encodeRouterEventJson(event));
  }
}
