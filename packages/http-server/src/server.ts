import type { Server } from "node:http";
import type { AddressInfo } from "node:net";

/** Listens on `host:port` (0 picks a free port); resolves with the bound port, rejects when binding fails. */
export function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(portOf(server));
    });
  });
}

/** The port a listening server is bound to. */
export function portOf(server: Server): number {
  return (server.address() as AddressInfo).port;
}

export interface CloseOptions {
  /** Cut the connections with a request in flight too, instead of letting their responses finish. */
  readonly force?: boolean;
}

/**
 * Stops accepting connections and ends the idle keep-alive ones (with `force`, every one); resolves once
 * every connection is gone.
 */
export function closeServer(server: Server, options: CloseOptions = {}): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    if (options.force) server.closeAllConnections();
    else server.closeIdleConnections();
  });
}
