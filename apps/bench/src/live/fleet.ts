import { KvEventBridge, connectEventPlane } from "@dynamo/kv-events";
import { NatsServer, freePort, waitFor, type RunningProcess } from "@dynamo/testkit";
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
  readonly requestId: string;
  readonly worker: string;
  readonly decisionMs: number;
  readonly selectMs: number;
  readonly tokenizeMs: number;
  readonly overlapBlocks: number;
}

/** The running processes of one live run. */
export interface Fleet {
  readonly gatewayUrl: string;
  readonly eppMetricsUrl: string;
  readonly workers: readonly FleetWorker[];
  /** The picker's decision log so far. */
  decisions(): Decision[];
  /** Process ids of everything started (the NATS server included). */
  pids(): number[];
  /** Stops every process of the run. */
  stop(): Promise<void>;
}

const MOCKER_LINE = /^mocker: worker (\S+) \(id (\d+)\) serving (http:\/\/\S+?)(?:,|$)/;

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
      requestId: String(line["requestId"]),
      worker: String(line["worker"]),
      decisionMs: Number(line["decisionMs"]),
      selectMs: Number(line["selectMs"]),
      tokenizeMs: Number(line["tokenizeMs"]),
      overlapBlocks: Number(line["overlapBlocks"]),
    }));
}

/**
 * Starts, on loopback: the mocker (N workers publishing vLLM KV events over ZeroMQ), a frontend sidecar per worker,
 * a NATS server and one ZeroMQ → NATS bridge per worker when the event plane is NATS, the endpoint picker over
 * static discovery, and the dev gateway. On any failure everything started so far is stopped.
 */
export async function startFleet(options: FleetOptions): Promise<Fleet> {
  const children = new Children(options.root);
  const stop = () => children.close();
  try {
    const zmqPorts: number[] = [];
    for (let i = 0; i < options.workers; i++) zmqPorts.push(await freePort());
    options.note(`starting ${options.workers} simulated workers (speedup ×${options.speedupRatio})`);
    const mocker = children.run("mocker", "apps/mocker/src/main.ts", [
      "--model-path",
      options.model,
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--num-workers",
      String(options.workers),
      "--speedup-ratio",
      String(options.speedupRatio),
      "--block-size",
      String(options.blockSize),
      "--num-gpu-blocks-override",
      String(options.gpuBlocks),
      "--zmq-kv-events-ports",
      zmqPorts.join(","),
    ]);
    const started = () => mocker.lines.filter((line) => MOCKER_LINE.test(line));
    await expectStart(mocker, "the mocker", () => started().length === options.workers, options.startTimeoutMs);
    const engines = started().map((line) => {
      const [, name, id, url] = MOCKER_LINE.exec(line)!;
      return { name: name!, id: BigInt(id!), url: url! };
    });

    const frontendPorts: number[] = [];
    for (let i = 0; i < engines.length; i++) frontendPorts.push(await freePort());
    options.note(`starting ${engines.length} frontend sidecars`);
    const frontends = engines.map((engine, i) =>
      children.run("frontend", "apps/frontend/src/main.ts", [
        "--host",
        "127.0.0.1",
        "--port",
        String(frontendPorts[i]),
        "--engine-url",
        engine.url,
        "--worker-id",
        String(engine.id),
        "--tokenizer",
        "none",
        "--log-level",
        "warn",
      ]),
    );
    const workers: FleetWorker[] = engines.map((engine, i) => ({
      id: engine.id,
      name: engine.name,
      engineUrl: engine.url,
      endpoint: `127.0.0.1:${frontendPorts[i]}`,
      zmqEndpoint: `tcp://127.0.0.1:${zmqPorts[i]}`,
    }));

    const eventEnv: Record<string, string> = { DYN_EVENT_PLANE: options.eventPlane };
    if (options.eventPlane === "nats") {
      const nats = await NatsServer.start({ jetstream: true });
      children.recordPid(nats.pid);
      children.onStop(() => nats.dispose());
      for (const worker of workers) {
        const nc = await connectEventPlane(nats.url);
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
      Object.assign(eventEnv, { NATS_SERVER: nats.url, DYN_NAMESPACE: "dynamo", DYN_COMPONENT_NAME: "backend" });
    }

    const [extProcPort, healthPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
    options.note(`starting the endpoint picker (DYN_ROUTER_MODE=${options.mode}, events over ${options.eventPlane})`);
    const epp = children.run("epp", "apps/epp/src/main.ts", [], {
      ...eventEnv,
      DYN_DISCOVERY_BACKEND: "static",
      DYN_DISCOVERY_WORKERS: JSON.stringify({
        defaults: { model: options.model, blockSize: options.blockSize },
        workers: workers.map((w) => ({
          name: w.name,
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
    });
    const gateway = children.run("dev-gateway", "apps/dev-gateway/src/main.ts", [
      "--port",
      "0",
      "--epp",
      `127.0.0.1:${extProcPort}`,
      "--epp-tls",
      "off",
      "--endpoints",
      workers.map((w) => w.endpoint).join(","),
    ]);
    const healthy = new Set<number>();
    await Promise.all([
      ...frontends.map((frontend, i) =>
        expectStart(
          frontend,
          `frontend ${i}`,
          () => {
            if (!healthy.has(i))
              void fetch(`http://${workers[i]!.endpoint}/health`).then(
                (r) => r.ok && healthy.add(i),
                () => undefined,
              );
            return healthy.has(i);
          },
          options.startTimeoutMs,
        ),
      ),
      expectStart(
        epp,
        "the endpoint picker",
        () => epp.json().some((l) => l["msg"] === "endpoint picker listening"),
        options.startTimeoutMs,
      ),
      expectStart(
        gateway,
        "the dev gateway",
        () => gateway.lines.some((l) => l.includes("dev-gateway listening on")),
        options.startTimeoutMs,
      ),
    ]);
    const gatewayUrl = /listening on (http:\/\/\S+),/.exec(gateway.lines.find((l) => l.includes("listening on"))!)![1]!;
    return {
      gatewayUrl,
      eppMetricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
      workers,
      decisions: () => decisionsOf(epp),
      pids: () => children.startedPids(),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
