// The serving topology read out of rendered manifests: the InferencePool, the EPP container behind its
// endpointPickerRef (with its resolved environment), and every worker pod with its engine and frontend
// sidecar, down to the flags the engine is started with.
import { DEFAULT_ROLE_LABEL } from "@dynamo/discovery";
import {
  containersOf,
  describe,
  expandedArgs,
  find,
  flagValues,
  hasFlag,
  ofKind,
  podTemplates,
  portNamed,
  resolveEnv,
  selects,
  spec,
  type ContainerRef,
  type K8sObject,
  type PodTemplate,
  type ResolvedEnv,
} from "./objects.js";

/** The label the EPP's discovery reads a worker's role from (prefill / decode; absent = aggregated). */
export const ROLE_LABEL = DEFAULT_ROLE_LABEL;
/** agg | prefill | decode on every worker pod (the mocker reads its mode from it). */
export const MODE_LABEL = "dynamo-gaie/disaggregation-mode";
/** The engine container of a worker pod. */
export const ENGINE_CONTAINER = "main";

export interface InferencePoolSpec {
  selector: { matchLabels: Record<string, string> };
  targetPorts: { number: number }[];
  endpointPickerRef: { group?: string; kind?: string; name: string; port?: { number: number }; failureMode?: string };
}

export interface Epp {
  pool: K8sObject;
  service: K8sObject;
  container: ContainerRef;
  env: ResolvedEnv;
}

/** What an engine is started with, whatever the engine. */
export interface EngineFacts {
  engine: "vllm" | "mocker";
  servedModel?: string;
  modelPath?: string;
  blockSize?: string;
  /** Port of the ZeroMQ PUB socket for KV events, and whether the engine binds it (the EPP dials in). */
  kvEventsPort?: number;
  kvEventsBound: boolean;
  kvReplayPort?: number;
  prefixCaching: boolean;
  kvEventsEnabled: boolean;
  kvConnector?: string;
  disaggregationMode?: string;
}

export interface Worker {
  pod: PodTemplate;
  engine: ContainerRef;
  engineEnv: ResolvedEnv;
  facts: EngineFacts;
  sidecar: ContainerRef;
  sidecarEnv: ResolvedEnv;
  /** The pod's role as the EPP sees it. */
  role: "agg" | "prefill" | "decode" | string;
}

export class TopologyError extends Error {}

export function inferencePool(objects: readonly K8sObject[]): { pool: K8sObject; spec: InferencePoolSpec } {
  const pools = ofKind(objects, "InferencePool");
  if (pools.length !== 1) throw new TopologyError(`expected one InferencePool, found ${pools.length}`);
  return { pool: pools[0]!, spec: spec<InferencePoolSpec>(pools[0]!) };
}

/** The EPP: the container behind the Service the pool's endpointPickerRef names, on the ref's port. */
export function epp(objects: readonly K8sObject[]): Epp {
  const { pool, spec: poolSpec } = inferencePool(objects);
  const ref = poolSpec.endpointPickerRef;
  const service = find(objects, "Service", ref.name);
  if (!service)
    throw new TopologyError(`${describe(pool)} names endpoint picker Service ${ref.name}, which is not rendered`);
  const servicePort = spec<{ ports: { port: number; targetPort?: number | string }[] }>(service).ports.find(
    (port) => port.port === ref.port?.number,
  );
  if (!servicePort) throw new TopologyError(`${describe(service)} has no port ${ref.port?.number ?? "<unset>"}`);
  const target = servicePort.targetPort ?? servicePort.port;
  const selector = spec<{ selector?: Record<string, string> }>(service).selector;
  const containers = podTemplates(objects)
    .filter((pod) => selects(selector, pod.labels))
    .flatMap((pod) => containersOf(pod))
    .filter((c) => (c.container.ports ?? []).some((p) => p.containerPort === target || p.name === target));
  if (containers.length !== 1) {
    throw new TopologyError(
      `${describe(service)} port ${servicePort.port} reaches ${containers.length} containers, expected the EPP`,
    );
  }
  const container = containers[0]!;
  return { pool, service, container, env: resolveEnv(container, objects) };
}

/** A port number out of `tcp://host:port`. */
function endpointPort(endpoint: string | undefined): number | undefined {
  const port = /:(\d+)$/.exec(endpoint ?? "")?.[1];
  return port === undefined ? undefined : Number(port);
}

function firstNumber(values: string[]): number | undefined {
  const value = values[0]?.split(",")[0];
  return value === undefined ? undefined : Number(value);
}

/** Engine flags, for the engines the manifests run (vLLM, the mocker). */
export function engineFacts(ref: ContainerRef, args: string[]): EngineFacts {
  const image = ref.container.image ?? "";
  const one = (flag: string) => flagValues(args, flag)[0];
  if (image.startsWith("vllm/")) {
    const serve = args.indexOf("serve");
    const positional = serve >= 0 ? args[serve + 1] : undefined;
    const modelPath = positional !== undefined && !positional.startsWith("--") ? positional : one("--model");
    const events = JSON.parse(one("--kv-events-config") ?? "{}") as {
      enable_kv_cache_events?: boolean;
      publisher?: string;
      endpoint?: string;
      replay_endpoint?: string;
    };
    const transfer = JSON.parse(one("--kv-transfer-config") ?? "{}") as { kv_connector?: string };
    const endpoint = events.endpoint ?? "tcp://*:5557";
    return {
      engine: "vllm",
      modelPath,
      servedModel: one("--served-model-name") ?? modelPath,
      blockSize: one("--block-size"),
      kvEventsPort: endpointPort(endpoint),
      kvEventsBound: endpoint.includes("*") || endpoint.includes("::"),
      kvReplayPort: endpointPort(events.replay_endpoint),
      prefixCaching: hasFlag(args, "--enable-prefix-caching") && !hasFlag(args, "--no-enable-prefix-caching"),
      kvEventsEnabled: events.enable_kv_cache_events === true && (events.publisher ?? "zmq") === "zmq",
      kvConnector: transfer.kv_connector,
    };
  }
  if (image.startsWith("dynamo-gaie/mocker")) {
    return {
      engine: "mocker",
      modelPath: one("--model-path"),
      servedModel: one("--served-model-name") ?? one("--model-path"),
      blockSize: one("--block-size"),
      kvEventsPort: firstNumber(flagValues(args, "--zmq-kv-events-ports")),
      kvEventsBound: true,
      kvReplayPort: firstNumber(flagValues(args, "--zmq-replay-ports")),
      prefixCaching: !hasFlag(args, "--no-enable-prefix-caching"),
      kvEventsEnabled: hasFlag(args, "--zmq-kv-events-ports"),
      disaggregationMode: one("--disaggregation-mode"),
    };
  }
  throw new TopologyError(`${ref.where}: unknown engine image ${image}`);
}

/** Worker pods: the pods with a container port named `http` (the endpoint the EPP and the gateway use). */
export function workerPods(objects: readonly K8sObject[]): PodTemplate[] {
  return podTemplates(objects).filter((pod) =>
    containersOf(pod).some((ref) => portNamed(ref.container, "http") !== undefined),
  );
}

export function workers(objects: readonly K8sObject[]): Worker[] {
  return workerPods(objects).map((pod) => {
    const containers = containersOf(pod);
    const engine = containers.find((ref) => ref.container.name === ENGINE_CONTAINER);
    const sidecars = containers.filter((ref) => portNamed(ref.container, "http") !== undefined);
    if (!engine) throw new TopologyError(`${describe(pod.owner)} has no engine container named ${ENGINE_CONTAINER}`);
    if (sidecars.length !== 1)
      throw new TopologyError(`${describe(pod.owner)} has ${sidecars.length} containers with an http port`);
    const engineEnv = resolveEnv(engine, objects);
    const sidecar = sidecars[0]!;
    return {
      pod,
      engine,
      engineEnv,
      facts: engineFacts(engine, expandedArgs(engine, engineEnv)),
      sidecar,
      sidecarEnv: resolveEnv(sidecar, objects),
      role: pod.labels[ROLE_LABEL] ?? "agg",
    };
  });
}
