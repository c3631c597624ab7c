import { connect, type NatsConnection, type NodeConnectionOptions } from "@nats-io/transport-node";

/**
 * Connects to NATS for the event plane: reconnects forever (every 250 ms by default) so that a
 * restarted server is picked up again; a `KvEventSubscriber` then asks every bridge for the events it
 * missed meanwhile.
 */
export function connectEventPlane(
  servers: string | string[],
  options: NodeConnectionOptions = {},
): Promise<NatsConnection> {
  return connect({ servers, maxReconnectAttempts: -1, reconnectTimeWait: 250, pingInterval: 5_000, ...options });
}
