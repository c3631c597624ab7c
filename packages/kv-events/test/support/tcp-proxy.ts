import { createServer, connect, type Server, type Socket } from "node:net";
import { freePort } from "@dynamo/testkit";

/**
 * A TCP forwarder on 127.0.0.1 between a client and a server, so that a test can cut the client's
 * connection without stopping either end: `cut()` drops every connection and refuses new ones (the port
 * is closed) until `restore()`; `hold()` accepts new connections but never forwards them (a peer that
 * hangs). `target` can be changed to send later connections elsewhere.
 */
export class TcpProxy {
  private server: Server | undefined;
  private readonly open = new Set<Socket>();
  private mode: "forward" | "hold" = "forward";
  /** Connections accepted while holding. */
  held = 0;
  /** Connections forwarded so far. */
  forwarded = 0;

  private constructor(
    readonly port: number,
    public targetPort: number,
  ) {}

  static async start(targetPort: number): Promise<TcpProxy> {
    const proxy = new TcpProxy(await freePort(), targetPort);
    await proxy.listen();
    return proxy;
  }

  get url(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Drops every connection and stops listening. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const socket of this.open) socket.destroy();
    this.open.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Listens again and forwards new connections (held ones stay held). */
  async restore(): Promise<void> {
    this.mode = "forward";
    if (!this.server) await this.listen();
  }

  /** Accepts new connections without forwarding them. */
  hold(): void {
    this.mode = "hold";
  }

  async close(): Promise<void> {
    await this.cut();
  }

  private listen(): Promise<void> {
    const server = createServer((client) => this.accept(client));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", () => resolve());
    });
  }

  private accept(client: Socket): void {
    this.open.add(client);
    client.on("close", () => this.open.delete(client));
    client.on("error", () => client.destroy());
    if (this.mode === "hold") {
      this.held++;
      return;
    }
    this.forwarded++;
    const upstream = connect(this.targetPort, "127.0.0.1");
    this.open.add(upstream);
    upstream.on("close", () => {
      this.open.delete(upstream);
      client.destroy();
    });
    upstream.on("error", () => upstream.destroy());
    client.on("close", () => upstream.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  }
}
