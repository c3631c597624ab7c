import { Agent, request } from "node:http";
import { ExtProcClient } from "@dynamo/ext-proc";
import { freePort, startProcess, waitFor, type RunningProcess, type StagedBundle } from "@dynamo/testkit";
import type { ProbeCandidate } from "../src/index.js";
import { MODEL, checkHealth, healthClient } from "./support.js";

/** What the probe API answers for a request the picker could route. */
export interface ProbeAnswer {
  readonly chosen: { readonly worker: string; readonly dpRank: number };
  readonly overlapBlocks: number;
  readonly candidates: readonly ProbeCandidate[];
}

/** The loopback ports an endpoint picker process listens on. */
export interface EppPorts {
  readonly extProc: number;
  readonly health: number;
  readonly metrics: number;
  readonly probe: number;
}

/** Ports free right now for one picker process. */
export async function freeEppPorts(): Promise<EppPorts> {
  return { extProc: await freePort(), health: await freePort(), metrics: await freePort(), probe: await freePort() };
}

/** One endpoint picker running as its own process (the staged bundle under plain `node`). */
export interface EppProcess {
  readonly name: string;
  readonly process: RunningProcess;
  readonly ports: EppPorts;
  /** An ext_proc client to the process (h2c, or TLS without verification), as a gateway holds one. */
  readonly client: ExtProcClient;
  /** Whether gRPC health reports the picker SERVING (false while starting or unreachable). */
  serving(): Promise<boolean>;
  /** The decision the picker would take for `body` now, booking nothing (`POST /v1/routing/probe`). */
  probe(body: Record<string, unknown>): Promise<ProbeAnswer>;
  /** Active requests per worker id in this picker's load view, read through the probe API. */
  activeRequests(): Promise<Map<string, number>>;
  /** The value on `/metrics` of the first series of `name` carrying `labels` (0 when absent). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  /** Closes the clients and stops the process (SIGTERM, SIGKILL after `graceMs`); again, or after an exit, is harmless. */
  stop(graceMs?: number): Promise<void>;
}

/** The request the load view is probed with: short, so a probe costs about a millisecond of tokenization. */
const VIEW_PROBE = { model: MODEL, messages: [{ role: "user", content: "load?" }], max_tokens: 1 };

/** Keep-alive connections for the many small probe requests of a test. */
const agent = new Agent({ keepAlive: true, maxSockets: 8 });

function httpJson(
  port: number,
  method: string,
  path: string,
  body?: string,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: "127.0.0.1",
      port,
      method,
      path,
      agent,
      headers: { "content-type": "application/json" },
    });
    req.on("response", (res) => {
      const parts: Buffer[] = [];
      res.on("data", (chunk: Buffer) => parts.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString() }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** How a picker process is started besides its environment. */
export interface EppProcessOptions {
  /** Listen on these ports (a restarted replica keeping its address); default: free ones. */
  readonly ports?: EppPorts;
  /** Serve ext_proc over TLS with the picker's self-signed certificate, as it ships (default: plaintext). */
  readonly tls?: boolean;
}

/**
 * Starts an endpoint picker from a staged bundle on loopback, with the probe API on, one tokenizer thread and
 * no shutdown delays; `env` adds discovery, the event plane and replica sync, and may set other delays.
 */
export async function startEppProcess(
  bundle: StagedBundle,
  name: string,
  env: Record<string, string>,
  options: EppProcessOptions = {},
): Promise<EppProcess> {
  const ports = options.ports ?? (await freeEppPorts());
  const tls = options.tls ?? false;
  const child = startProcess(process.execPath, [bundle.main], {
    cwd: bundle.dir,
    env: {
      DYN_MODEL_NAME: MODEL,
      DYN_SECURE_SERVING: String(tls),
      DYN_EPP_EXT_PROC_PORT: String(ports.extProc),
      DYN_EPP_HEALTH_PORT: String(ports.health),
      DYN_EPP_METRICS_PORT: String(ports.metrics),
      DYN_EPP_PROBE_PORT: String(ports.probe),
      // The first probe loads the model's tokenizer.
      DYN_EPP_PROBE_TIMEOUT_MS: "30000",
      DYN_EPP_TOKENIZER_THREADS: "1",
      DYN_EPP_GRACEFUL_SHUTDOWN_PROPAGATION_SECS: "0",
      DYN_EPP_GRACEFUL_SHUTDOWN_DRAIN_SECS: "1",
      ...env,
    },
  });
  const client = new ExtProcClient({ target: `127.0.0.1:${ports.extProc}`, tls });
  // Polled from before the process listens: reconnect every few ms, not after gRPC's default backoff of 1 s and more.
  const health = healthClient(ports.health, false, {
    "grpc.initial_reconnect_backoff_ms": 5,
    "grpc.max_reconnect_backoff_ms": 20,
  });
  let clientsClosed = false;
  const probe = async (body: Record<string, unknown>): Promise<ProbeAnswer> => {
    const answer = await httpJson(ports.probe, "POST", "/v1/routing/probe", JSON.stringify(body));
    if (answer.status !== 200) throw new Error(`${name}: probe answered ${answer.status}: ${answer.text}`);
    return JSON.parse(answer.text) as ProbeAnswer;
  };
  return {
    name,
    process: child,
    ports,
    client,
    serving: () =>
      checkHealth(health, "readiness").then(
        (status) => status === "SERVING",
        () => false,
      ),
    probe,
    async activeRequests() {
      const { candidates } = await probe(VIEW_PROBE);
      return new Map(candidates.map((c) => [c.worker, c.activeRequests]));
    },
    async metric(name, labels = {}) {
      const { text } = await httpJson(ports.metrics, "GET", "/metrics");
      const wanted = Object.entries(labels).map(([label, value]) => `${label}="${value}"`);
      const line = text
        .split("\n")
        .find((l) => (l.startsWith(`${name} `) || l.startsWith(`${name}{`)) && wanted.every((w) => l.includes(w)));
      return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
    },
    async stop(graceMs = 5000) {
      if (!clientsClosed) {
        clientsClosed = true;
        client.close();
        health.close();
      }
      await child.stop(graceMs);
    },
  };
}

/**
 * Waits until the picker reports SERVING (failing early, with its output, if the process exits), then probes it
 * once so its tokenizer is loaded before the test measures anything.
 */
export async function waitServing(epp: EppProcess, timeoutMs = 60_000): Promise<void> {
  await waitFor(
    async () => {
      if (epp.process.child.exitCode !== null)
        throw new Error(`${epp.name} exited with ${epp.process.child.exitCode}:\n${epp.process.lines.join("\n")}`);
      return epp.serving();
    },
    `${epp.name} to report SERVING`,
    timeoutMs,
  );
  await epp.activeRequests();
}
