import { join } from "node:path";
import { KvEventBridge, connectEventPlane } from "@dynamo/kv-events";
import { NatsServer, freePort, freePortRun, waitFor, type RunningProcess } from "@dynamo/testkit";
import { Children } from "./children.js";

export type RouterMode = "kv" | "round-robin";
export type EventPlane = "zmq" | "nats";

/** What one live run starts. */
export interface FleetOptions {
  readonly root: string;
  readonly model: string;
  /** Simulated workers (one mocker process hosting them, a frontend sidecar per worker). */
  readonly workers: number;
  /** The endpoint picker's `DYN_ROUTER_MODE`. */
  readonly mode: RouterMode;
  /** KV events straight from the mockers over ZeroMQ, or bridged onto a NATS server started for the run. */
  readonly eventPlane: EventPlane;
  /** The mocker's `--speedup-ratio` (divides every modelled duration). */
  readonly speedupRatio: number;
  readonly blockSize: number;
  /** KV capacity of each worker in blocks (`--num-gpu-blocks-override`). */
  readonly gpuBlocks: number;
  /**
   * Endpoint picker replicas (default 1). Several share their bookings over a NATS server of the run
   * (`DYN_ROUTER_REPLICA_SYNC=true`); the dev gateway spreads streams over them, health-checking each.
   */
  readonly eppReplicas?: number;
  /**
   * V8 CPU profiles of every picker (`--cpu-prof`: one `.cpuprofile` per thread, written when the picker stops),
   * in `<dir>/epp-<replica>`; none when undefined.
   */
  readonly eppCpuProfileDir?: string | undefined;
  /** Start-up deadline of each process. */
  readonly startTimeoutMs: number;
  readonly note: (message: string) => void;
}

/** A simulated worker and its sidecar. */
export interface FleetWorker {
  readonly id: bigint;
  readonly name: string;
  /** The mocker worker's own URL (its `/metrics`). */
  readonly engineUrl: string;
  /** `host:port` of the frontend sidecar: the endpoint the gateway sends to. */
  readonly endpoint: string;
  readonly zmqEndpoint: string;
}

/** One routing decision of the picker's decision log. */
export interface Decision {
  /** When it was logged (ms since the epoch). */
  readonly atMs: number;
  readonly requestId: string;
  readonly worker: string;
  readonly decisionMs: number;
  readonly selectMs: number;
  readonly tokenizeMs: number;
  readonly overlapBlocks: number;
}

/** One endpoint picker process of a run. */
export interface EppReplica {
  /** `host:port` of its ext_proc server (as the gateway names it). */
  readonly target: string;
  readonly metricsUrl: string;
  readonly process: RunningProcess;
}

/** The running processes of one live run. */
export interface Fleet {
  readonly gatewayUrl: string;
  /** The first picker's `/metrics`. */
  readonly eppMetricsUrl: string;
  /** Every picker replica, in start order. */
  readonly replicas: readonly EppReplica[];
  /** The dev gateway's log lines so far. */
  gatewayLines(): readonly string[];
  readonly workers: readonly FleetWorker[];
  /** The decision logs of every picker so far, merged in time order. */
  decisions(): Decision[];
  /** Process ids of everything started (the NATS server included). */
  pids(): number[];
  /** Stops every process of the run. */
  stop(): Promise<void>;
}

const MOCKER_LINE = /^mocker: worker \S+ \(id \d+\) serving http:/;

async function expectStart(child: RunningProcess, what: string, ready: () => boolean, timeoutMs: number) {
  let exited = false;
  void child.exited.then(() => (exited = true));
  try {
    await waitFor(() => exited || ready(), what, timeoutMs, 50);
  } catch (error) {
    throw new Error(`${(error as Error).message}; its last output:\n${Children.tail(child)}`);
  }
  if (exited && !ready()) throw new Error(`${what} exited at start; its last output:\n${Children.tail(child)}`);
}

/** Parses the JSON `request` lines of the picker's decision log. */
function decisionsOf(epp: RunningProcess): Decision[] {
  return epp
    .json()
    .filter((line) => line["msg"] === "request")
    .map((line) => ({
      atMs: Number(line["time"]),
      requestId: String(line["requestId"]),
      worker: String(line["worker"]),
      decisionMs: Number(line["decisionMs"]),
      selectMs: Number(line["selectMs"]),
      tokenizeMs: Number(line["tokenizeMs"]),
      overlapBlocks: Number(line["overlapBlocks"]),
    }));
}

/**
 * Starts, on loopback and all at once: the mocker (N workers publishing vLLM KV events over ZeroMQ), a frontend
 * sidecar per worker, a NATS server and one ZeroMQ → NATS bridge per worker when the event plane is NATS, the
 * endpoint picker over static discovery, and the dev gateway. On any failure everything started so far is stopped;
 * a start that lost a port to another process (EADDRINUSE) is tried again on other ports, three times in all.
 */
export async function startFleet(options: FleetOptions, children = new Children(options.root)): Promise<Fleet> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startFleetOnce(options, children);
    } catch (error) {
      // Another process bound one of the ports between the check and a child's listen: start over on other ports.
      if (attempt >= START_ATTEMPTS || !/EADDRINUSE/.test((error as Error).message)) throw error;
      options.note(`a port was taken meanwhile (${firstLine(error)}); starting again on other ports`);
    }
  }
}

const START_ATTEMPTS = 3;

function firstLine(error: unknown): string {
  return (
    (error as Error).message
      .split("\n")
      .find((line) => line.includes("EADDRINUSE"))
      ?.trim() ?? ""
  );
}

async function startFleetOnce(options: FleetOptions, children: Children): Promise<Fleet> {
  const stop = () => children.stopAll();
  try {
    const enginePort = await freePortRun(options.workers);
    const workers: FleetWorker[] = [];
    for (let i = 0; i < options.workers; i++)
      workers.push({
        // Ids the picker's static discovery and the sidecars agree on; the mocker's own names play no part.
        id: BigInt(1001 + i),
        name: `${options.mode}-worker-${i}`,
        engineUrl: `http://127.0.0.1:${enginePort + i}`,
        endpoint: `127.0.0.1:${await freePort()}`,
        zmqEndpoint: `tcp://127.0.0.1:${await freePort()}`,
      });
    const label =
      (options.mode === "kv" ? "KV-aware" : "round-robin") +
      ((options.eppReplicas ?? 1) > 1 ? `, ${options.eppReplicas} EPP replicas` : "");
    const pickers =
      (options.eppReplicas ?? 1) > 1 ? `${options.eppReplicas} endpoint picker replicas` : "the endpoint picker";
    options.note(
      `${label}: starting ${options.workers} simulated workers (speedup ×${options.speedupRatio}), ${options.workers} frontend sidecars, ${pickers} (DYN_ROUTER_MODE=${options.mode}, events over ${options.eventPlane}), the dev gateway`,
    );
    const mocker = children.run(`${options.mode} mocker`, "apps/mocker/src/main.ts", [
      "--model-path",
      options.model,
      "--host",
      "127.0.0.1",
      "--port",
      String(enginePort),
      "--num-workers",
      String(options.workers),
      "--speedup-ratio",
      String(options.speedupRatio),
      "--block-size",
      String(options.blockSize),
      "--num-gpu-blocks-override",
      String(options.gpuBlocks),
      "--zmq-kv-events-ports",
      workers.map((w) => w.zmqEndpoint.slice(w.zmqEndpoint.lastIndexOf(":") + 1)).join(","),
    ]);
    const frontends = workers.map((worker) =>
      children.run(`${options.mode} frontend`, "apps/frontend/src/main.ts", [
        "--host",
        "127.0.0.1",
        "--port",
        worker.endpoint.slice(worker.endpoint.indexOf(":") + 1),
        "--engine-url",
        worker.engineUrl,
        "--worker-id",
        String(worker.id),
        "--tokenizer",
        "none",
        "--log-level",
        "warn",
      ]),
    );

    const eventEnv: Record<string, string> = { DYN_EVENT_PLANE: options.eventPlane };
    const replicaCount = options.eppReplicas ?? 1;
    // NATS carries the KV events (event plane nats) and the replicas' bookings (several replicas).
    let natsUrl = "";
    if (options.eventPlane === "nats" || replicaCount > 1) {
      const nats = await NatsServer.start({ jetstream: options.eventPlane === "nats" });
      children.recordPid(nats.pid);
      children.onStop(() => nats.dispose());
      natsUrl = nats.url;
      eventEnv["NATS_SERVER"] = natsUrl;
      if (replicaCount > 1) {
        eventEnv["DYN_ROUTER_REPLICA_SYNC"] = "true";
        // A measurement: every decision is audited against the peers' concurrent bookings (8 is the default).
        eventEnv["DYN_ROUTER_REPLICA_AUDIT_EVERY"] = "1";
      }
    }
    if (options.eventPlane === "nats") {
      Object.assign(eventEnv, { DYN_NAMESPACE: "dynamo", DYN_COMPONENT_NAME: "backend" });
      // The bridges dial the mocker's publishers (ZeroMQ reconnects until they listen).
      for (const worker of workers) {
        const nc = await connectEventPlane(natsUrl);
        children.onStop(() => nc.close());
        const bridge = await KvEventBridge.start({
          nc,
          namespace: "dynamo",
          component: "backend",
          blockSize: options.blockSize,
          worker: { workerId: worker.id, endpoint: worker.zmqEndpoint },
        });
        children.onStop(() => bridge.close());
      }
    }
    const replicas: EppReplica[] = [];
    for (let r = 0; r < replicaCount; r++) {
      const [extProcPort, healthPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
      const profile = options.eppCpuProfileDir;
      const nodeArgs = profile === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${join(profile, `epp-${r}`)}`];
      const epp = children.run(
        `${options.mode} epp ${r}`,
        "apps/epp/src/main.ts",
        [],
        {
          ...eventEnv,
          DYN_DISCOVERY_BACKEND: "static",
          DYN_DISCOVERY_WORKERS: JSON.stringify({
            defaults: { model: options.model, blockSize: options.blockSize },
            workers: workers.map((w) => ({
              name: w.name,
              id: String(w.id),
              http: w.endpoint,
              ...(options.eventPlane === "zmq" ? { kvEvents: { endpoint: w.zmqEndpoint } } : {}),
            })),
          }),
          DYN_ROUTER_MODE: options.mode,
          DYN_KV_CACHE_BLOCK_SIZE: String(options.blockSize),
          DYN_MODEL_NAME: options.model,
          DYN_SECURE_SERVING: "false",
          DYN_EPP_EXT_PROC_PORT: String(extProcPort),
          DYN_EPP_HEALTH_PORT: String(healthPort),
          DYN_EPP_METRICS_PORT: String(metricsPort),
          DYN_EPP_TOKENIZER_THREADS: "1",
          DYN_EPP_GRACEFUL_SHUTDOWN_PROPAGATION_SECS: "0",
          DYN_EPP_GRACEFUL_SHUTDOWN_DRAIN_SECS: "1",
        },
        nodeArgs,
      );
      replicas.push({
        target: `127.0.0.1:${extProcPort}`,
        metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
        process: epp,
      });
    }
    const gateway = children.run(`${options.mode} dev-gateway`, "apps/dev-gateway/src/main.ts", [
      "--port",
      "0",
      "--epp",
      replicas.map((r) => r.target).join(","),
      "--epp-tls",
      "off",
      "--epp-health-interval",
      "200",
      "--endpoints",
      workers.map((w) => w.endpoint).join(","),
    ]);
    const healthy = new Set<number>();
    const answers = (i: number, url: string) => () => {
      if (!healthy.has(i))
        void fetch(url).then(
          (r) => r.ok && healthy.add(i),
          () => undefined,
        );
      return healthy.has(i);
    };
    const timeout = options.startTimeoutMs;
    await Promise.all([
      expectStart(
        mocker,
        `${label} mocker`,
        () => mocker.lines.filter((line) => MOCKER_LINE.test(line)).length === options.workers,
        timeout,
      ),
      ...frontends.map((frontend, i) =>
        expectStart(frontend, `${label} frontend ${i}`, answers(i, `http://${workers[i]!.endpoint}/health`), timeout),
      ),
      ...replicas.map((replica, r) =>
        expectStart(
          replica.process,
          `${label} endpoint picker ${r}`,
          // Several replicas: ready once each has joined its peers.
          () =>
            replica.process
              .json()
              .some((l) => l["msg"] === (replicas.length > 1 ? "replica sync: joined" : "endpoint picker listening")),
          timeout,
        ),
      ),
      expectStart(
        gateway,
        `${label} dev gateway`,
        () => gateway.lines.some((l) => l.includes("dev-gateway listening on")),
        timeout,
      ),
    ]);
    const gatewayUrl = /listening on (http:\/\/\S+),/.exec(gateway.lines.find((l) => l.includes("listening on"))!)![1]!;
    return {
      gatewayUrl,
      eppMetricsUrl: replicas[0]!.metricsUrl,
      replicas,
      gatewayLines: () => gateway.lines,
      workers,
      decisions: () =>
        replicas.length === 1
          ? decisionsOf(replicas[0]!.process)
          : replicas.flatMap((r) => decisionsOf(r.process)).sort((a, b) => a.atMs - b.atMs),
      pids: () => children.startedPids(),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
