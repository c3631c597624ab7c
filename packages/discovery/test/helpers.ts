import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import type { DiscoveryProblem, WorkerChange, WorkerRegistry } from "../src/index.js";

/** Records every change and problem a registry emits. */
export function record(registry: WorkerRegistry): { changes: WorkerChange[]; problems: DiscoveryProblem[] } {
  const changes: WorkerChange[] = [];
  const problems: DiscoveryProblem[] = [];
  registry.on("change", (change) => changes.push(change));
  registry.on("problem", (problem) => problems.push(problem));
  return { changes, problems };
}

/** Names of the current workers, sorted. */
export function names(registry: WorkerRegistry): string[] {
  return registry
    .list()
    .map((worker) => worker.name)
    .sort();
}

/**
 * A TCP forwarder to `127.0.0.1:<port>` that can be shut: while shut it refuses clients (accepts and
 * drops them), so a client behind it reconnects only once the test opens it again.
 */
export class TcpGate {
  private shut = false;
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<TcpGate> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const gate = new TcpGate(server, (server.address() as AddressInfo).port);
    server.on("connection", (client) => gate.forward(client, targetPort));
    return gate;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** Refuses new clients and cuts the current ones. */
  close(): void {
    this.shut = true;
    for (const socket of this.sockets) socket.destroy();
  }

  open(): void {
    this.shut = false;
  }

  async dispose(): Promise<void> {
    this.close();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private forward(client: Socket, targetPort: number): void {
    if (this.shut) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, "127.0.0.1");
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on("close", () => {
        this.sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
      socket.on("error", () => undefined);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }
}
