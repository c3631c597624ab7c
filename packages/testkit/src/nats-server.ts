import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.js";

export interface NatsServerOptions {
  /** Enable JetStream (stored in a private temporary directory). Default true. */
  jetstream?: boolean;
  /** Port to listen on; a free one is picked when absent. Restarts reuse the same port. */
  port?: number;
  /** Server configuration text (authorization, TLS, ...), given to the server as its config file. */
  config?: string;
}

/** A real `nats-server` child process on 127.0.0.1, owned by one test file. */
export class NatsServer {
  private child: ChildProcess | undefined;
  private readonly storeDir: string;

  private constructor(
    readonly port: number,
    private readonly jetstream: boolean,
    private readonly config: string | undefined,
  ) {
    this.storeDir = mkdtempSync(join(tmpdir(), "nats-js-"));
  }

  /** Starts a server on a free port and waits until it accepts connections. */
  static async start(options: NatsServerOptions = {}): Promise<NatsServer> {
    const server = new NatsServer(options.port ?? (await freePort()), options.jetstream ?? true, options.config);
    await server.spawn();
    return server;
  }

  /** Process id of the running server (undefined while stopped). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** Stops the process (SIGTERM, then SIGKILL after 5 s). JetStream data survives for `restart()`. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    this.child = undefined;
    await new Promise<void>((resolve) => {
      const killer = setTimeout(() => child.kill("SIGKILL"), 5000);
      child.once("exit", () => {
        clearTimeout(killer);
        resolve();
      });
      child.kill("SIGTERM");
    });
  }

  /** Stops and starts the server again on the same port, keeping JetStream state. */
  async restart(): Promise<void> {
    await this.stop();
    await this.spawn();
  }

  /** Stops the server and removes its JetStream directory. */
  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.storeDir, { recursive: true, force: true });
  }

  private async spawn(): Promise<void> {
    const args = ["-a", "127.0.0.1", "-p", String(this.port)];
    if (this.config !== undefined) {
      const file = join(this.storeDir, "server.conf");
      writeFileSync(file, this.config);
      args.push("-c", file);
    }
    if (this.jetstream) args.push("-js", "-sd", this.storeDir);
    const child = spawn(natsServerBinary(), args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
    });
    this.child = child;
    const deadline = Date.now() + 10_000;
    while (!(await canConnect(this.port))) {
      if (child.exitCode !== null) throw new Error(`nats-server exited with ${child.exitCode}: ${stderr}`);
      if (Date.now() > deadline) throw new Error(`nats-server did not listen on ${this.port} within 10 s: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

function natsServerBinary(): string {
  const fromEnv = process.env["NATS_SERVER_BIN"];
  if (fromEnv) return fromEnv;
  for (const candidate of ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]) {
    if (existsSync(candidate)) return candidate;
  }
  return "nats-server";
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
