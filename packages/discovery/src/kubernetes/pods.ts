import { containerWorkerId, podWorkerId } from "../worker-id.js";
import { namespaceMatches } from "../namespace.js";
import type { KvEventEndpoints, WorkerInfo, WorkerRole } from "../worker.js";

/** Label carrying the Dynamo namespace of a worker pod. */
export const DYNAMO_NAMESPACE_LABEL = "nvidia.com/dynamo-namespace";
/** Label marking Dynamo worker pods (`worker`). */
export const DYNAMO_COMPONENT_CLASS_LABEL = "nvidia.com/dynamo-component-class";
/** Default label whose value (`prefill` / `decode`) gives a pod's role. */
export const DEFAULT_ROLE_LABEL = "nvidia.com/dynamo-sub-component-type";
/** Default vLLM KV-event PUB port (rank r publishes on port + r). */
export const DEFAULT_KV_EVENT_PORT = 5557;

/** The parts of a Pod discovery reads (both the typed client objects and raw watch JSON fit). */
export interface PodObject {
  metadata?: {
    name?: string;
    labels?: Record<string, string>;
    deletionTimestamp?: unknown;
  };
  spec?: { containers?: { name: string; ports?: { name?: string; containerPort: number }[] }[] };
  status?: {
    podIP?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { name: string; ready: boolean }[];
  };
}

/** How pods become workers. */
export interface PodMapping {
  /** `pod`: one worker per Ready pod; `container`: one per Ready container. */
  mode: "pod" | "container";
  /** Dynamo-label selection: only pods whose namespace label starts with this prefix. */
  namespacePrefix?: string;
  /** InferencePool selection: the pool's target ports, one per DP rank (replaces the `http` port). */
  targetPorts?: readonly number[];
  /** Fixed role for every worker; otherwise read from `roleLabel`, `both` when absent. */
  role?: WorkerRole;
  roleLabel: string;
  /** KV-event PUB port of rank 0 when the pod has no container port named `kv-events`. */
  kvEventPort: number;
  /** Replay ROUTER port of rank 0 when the pod has no container port named `kv-replay`. */
  kvEventReplayPort?: number;
  modelName?: string;
  blockSize?: number;
  totalKvBlocks?: number;
  /** Per-step token budget of every worker (router busy thresholds); the role-specific ones win. */
  maxNumBatchedTokens?: number;
  prefillMaxNumBatchedTokens?: number;
  decodeMaxNumBatchedTokens?: number;
}

/** Why a pod contributes no worker (for operators asking "why is my pod missing?"). */
export type PodSkipReason = "unnamed" | "terminating" | "no-ip" | "not-ready" | "namespace-mismatch" | "no-http-port";

function namedPort(pod: PodObject, name: string): number | undefined {
  for (const container of pod.spec?.containers ?? []) {
    const port = container.ports?.find((p) => p.name === name);
    if (port) return port.containerPort;
  }
  return undefined;
}

function hostPort(ip: string, port: number): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}

function roleOf(pod: PodObject, mapping: PodMapping): WorkerRole {
  if (mapping.role) return mapping.role;
  const value = pod.metadata?.labels?.[mapping.roleLabel];
  return value === "prefill" || value === "decode" ? value : "both";
}

/**
 * The workers one pod contributes, or the reason it contributes none. Pods must be named, not
 * terminating and have an IP; in `pod` mode the pod must be Ready, in `container` mode each Ready
 * container yields a worker (all sharing the pod's endpoints).
 */
export function workersFromPod(pod: PodObject, mapping: PodMapping): WorkerInfo[] | PodSkipReason {
  const podName = pod.metadata?.name;
  if (!podName) return "unnamed";
  if (pod.metadata?.deletionTimestamp) return "terminating";
  const ip = pod.status?.podIP;
  if (!ip) return "no-ip";
  const namespace = pod.metadata?.labels?.[DYNAMO_NAMESPACE_LABEL] ?? "";
  if (mapping.namespacePrefix !== undefined && !namespaceMatches(mapping.namespacePrefix, namespace)) {
    return "namespace-mismatch";
  }

  let rankHttpEndpoints: string[];
  if (mapping.targetPorts) {
    rankHttpEndpoints = mapping.targetPorts.map((port) => hostPort(ip, port));
  } else {
    const httpPort = namedPort(pod, "http");
    if (httpPort === undefined) return "no-http-port";
    rankHttpEndpoints = [hostPort(ip, httpPort)];
  }
  if (rankHttpEndpoints.length === 0) return "no-http-port";

  const names =
    mapping.mode === "pod"
      ? pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")
        ? [{ id: podWorkerId(podName), name: podName }]
        : []
      : (pod.status?.containerStatuses ?? [])
          .filter((status) => status.ready)
          .map((status) => ({ id: containerWorkerId(podName, status.name), name: `${podName}/${status.name}` }));
  if (names.length === 0) return "not-ready";

  const dpSize = rankHttpEndpoints.length;
  const ranks = Array.from({ length: dpSize }, (_, rank) => rank);
  const kvPort = namedPort(pod, "kv-events") ?? mapping.kvEventPort;
  const replayPort = namedPort(pod, "kv-replay") ?? mapping.kvEventReplayPort;
  const kvEvents: KvEventEndpoints = { endpoints: ranks.map((rank) => `tcp://${hostPort(ip, kvPort + rank)}`) };
  if (replayPort !== undefined)
    kvEvents.replayEndpoints = ranks.map((rank) => `tcp://${hostPort(ip, replayPort + rank)}`);

  const role = roleOf(pod, mapping);
  return names.map(({ id, name }) => {
    const worker: WorkerInfo = {
      id,
      name,
      role,
      namespace,
      component: "",
      httpEndpoint: rankHttpEndpoints[0]!,
      rankHttpEndpoints,
      dpSize,
      dpStartRank: 0,
      kvEvents,
    };
    if (mapping.modelName !== undefined) worker.modelName = mapping.modelName;
    if (mapping.blockSize !== undefined) worker.blockSize = mapping.blockSize;
    const capacity = capacityOf(role, mapping);
    if (capacity !== undefined) worker.capacity = capacity;
    return worker;
  });
}

/** Capacity hints of a worker in `role`: KV blocks, and the token budget of its role (else the general one). */
function capacityOf(role: WorkerRole, mapping: PodMapping): WorkerInfo["capacity"] {
  const byRole =
    role === "prefill"
      ? mapping.prefillMaxNumBatchedTokens
      : role === "decode"
        ? mapping.decodeMaxNumBatchedTokens
        : undefined;
  const maxNumBatchedTokens = byRole ?? mapping.maxNumBatchedTokens;
  if (mapping.totalKvBlocks === undefined && maxNumBatchedTokens === undefined) return undefined;
  return {
    ...(mapping.totalKvBlocks !== undefined && { totalKvBlocks: mapping.totalKvBlocks }),
    ...(maxNumBatchedTokens !== undefined && { maxNumBatchedTokens }),
  };
}

/** The InferencePool fields discovery uses (`inference.networking.k8s.io/v1`). */
export interface InferencePoolSpec {
  matchLabels: Record<string, string>;
  targetPorts: number[];
}

/** Reads `spec.selector.matchLabels` and `spec.targetPorts[].number`; an error message when malformed. */
export function parseInferencePool(object: unknown): InferencePoolSpec | { error: string } {
  const spec = (object as { spec?: unknown } | null)?.spec as
    { selector?: { matchLabels?: unknown }; targetPorts?: unknown } | undefined;
  const matchLabels = spec?.selector?.matchLabels;
  if (typeof matchLabels !== "object" || matchLabels === null || Object.keys(matchLabels).length === 0) {
    return { error: "spec.selector.matchLabels is missing or empty" };
  }
  if (!Object.values(matchLabels).every((value) => typeof value === "string")) {
    return { error: "spec.selector.matchLabels values must be strings" };
  }
  const ports = Array.isArray(spec?.targetPorts) ? (spec.targetPorts as { number?: unknown }[]) : [];
  const targetPorts = ports.map((port) => port?.number);
  if (
    targetPorts.length === 0 ||
    !targetPorts.every((n): n is number => Number.isInteger(n) && (n as number) > 0 && (n as number) < 65536)
  ) {
    return { error: "spec.targetPorts must list at least one port number (1-65535)" };
  }
  return { matchLabels: matchLabels as Record<string, string>, targetPorts };
}

/** `k1=v1,k2=v2`, keys sorted so equal selectors compare equal. */
export function labelSelectorOf(matchLabels: Record<string, string>): string {
  return Object.keys(matchLabels)
    .sort()
    .map((key) => `${key}=${matchLabels[key]}`)
    .join(",");
}
