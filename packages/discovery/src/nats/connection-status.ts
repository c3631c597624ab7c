import type { NatsConnection, Status } from "@nats-io/nats-core";

/** Calls `onStatus` for each connection status event until the returned function is called. */
export function onConnectionStatus(connection: NatsConnection, onStatus: (status: Status) => void): () => void {
  const statuses = connection.status() as AsyncIterable<Status> & { stop?: () => void };
  let stopped = false;
  void (async () => {
    for await (const status of statuses) {
      if (stopped) break;
      onStatus(status);
    }
  })();
  return () => {
    stopped = true;
    statuses.stop?.();
  };
}
