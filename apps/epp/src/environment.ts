import { DEFAULT_SETTINGS, SETTINGS, ACCEPTED, schemas, setting, type Setting } from "@dynamo/kv-router";
import { DEFAULT_SERVICE_SETTINGS, SERVICE_SETTINGS } from "@dynamo/router-service";
import { z } from "zod";

/**
 * The endpoint picker's own settings (the router's and the router service's have their own tables):
 * servers, limits, logging, the probe API, the remote tokenizer, replica sync and the deployment mode.
 */
export interface EppSettings {
  mode: "dynamo" | "standalone";
  secureServing: boolean;
  extProcPort: number;
  healthPort: number;
  metricsPort: number;
  eventLoopResolutionMs: number;
  probePort: number;
  probeTimeoutMs: number;
  probeMaxInflight: number;
  shutdownPropagationSecs: number;
  shutdownDrainSecs: number;
  maxInflightRequests: number;
  maxRequestBodyBytes: number;
  maxTokenizationBacklogBytes: number;
  shedRetryAfterSecs: number;
  metadataHeader: string;
  conformanceHooks: boolean;
  logLevel: "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";
  modelName: string | undefined;
  inferencePoolName: string | undefined;
  prefillInferencePoolName: string | undefined;
  topologyMode: "aggregated" | "disaggregated";
  selectionIndexerThreads: number;
  tokenizerThreads: number | undefined;
  tokenizerServiceUrl: string | undefined;
  tokenizerProtocol: "vllm-render";
  tokenizationTimeoutMs: number;
  tokenizerMaxResponseBytes: number;
  peerService: string | undefined;
  podIp: string | undefined;
  replicaSyncPort: number;
  replicaLeaseSecs: number;
}

type Key = keyof EppSettings;
const s = setting<Key>;
const { intAtLeast, nonNegative, oneOf, finite } = schemas;
const port = () => intAtLeast(0).refine((v) => v <= 65535);
const PORT = "a port number (0–65535)";
/** Bounds of `DYN_ROUTER_REPLICA_LEASE_SECS`: heartbeats every 10 ms at the shortest, a peer gone within an hour at the longest. */
const MIN_REPLICA_LEASE_SECS = 0.1;
const MAX_REPLICA_LEASE_SECS = 3600;
const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

export const EPP_SETTINGS: readonly Setting<Key>[] = [
  s("mode", "DYN_EPP_MODE", "enum", oneOf(["dynamo", "standalone"]), "dynamo or standalone"),
  s("secureServing", "DYN_SECURE_SERVING", "bool", z.boolean(), ACCEPTED.bool),
  s("extProcPort", "DYN_EPP_EXT_PROC_PORT", "int", port(), PORT),
  s("healthPort", "DYN_EPP_HEALTH_PORT", "int", port(), PORT),
  s("metricsPort", "DYN_EPP_METRICS_PORT", "int", port(), `${PORT}; 0 disables`),
  s("eventLoopResolutionMs", "DYN_EPP_EVENT_LOOP_RESOLUTION_MS", "int", intAtLeast(1), "milliseconds, an integer ≥ 1"),
  s("probePort", "DYN_EPP_PROBE_PORT", "int", port(), `${PORT}; 0 disables`),
  s("probeTimeoutMs", "DYN_EPP_PROBE_TIMEOUT_MS", "int", intAtLeast(1), "an integer ≥ 1"),
  s("probeMaxInflight", "DYN_EPP_PROBE_MAX_INFLIGHT", "int", intAtLeast(1), "an integer ≥ 1"),
  s("shutdownPropagationSecs", "DYN_EPP_GRACEFUL_SHUTDOWN_PROPAGATION_SECS", "number", nonNegative(), "seconds ≥ 0"),
  s("shutdownDrainSecs", "DYN_EPP_GRACEFUL_SHUTDOWN_DRAIN_SECS", "number", nonNegative(), "seconds ≥ 0"),
  s("maxInflightRequests", "DYN_EPP_MAX_INFLIGHT_REQUESTS", "int", intAtLeast(1), "an integer ≥ 1"),
  s("maxRequestBodyBytes", "DYN_EPP_MAX_REQUEST_BODY_BYTES", "int", intAtLeast(1), "an integer ≥ 1"),
  s("maxTokenizationBacklogBytes", "DYN_EPP_MAX_TOKENIZATION_BACKLOG_BYTES", "int", intAtLeast(1), "an integer ≥ 1"),
  s("shedRetryAfterSecs", "DYN_EPP_SHED_RETRY_AFTER_SECS", "int", intAtLeast(0), "an integer ≥ 0"),
  s("metadataHeader", "DYN_METADATA_HEADER", "string", z.string().regex(/^[a-z0-9-]+$/i), "a header-name prefix"),
  s("conformanceHooks", "DYN_EPP_CONFORMANCE_HOOKS", "bool", z.boolean(), ACCEPTED.bool),
  s("logLevel", "DYN_LOG", "enum", oneOf(LOG_LEVELS), LOG_LEVELS.join(", ")),
  s("modelName", "DYN_MODEL_NAME", "string", z.string(), "a model name"),
  s("inferencePoolName", "DYN_EPP_INFERENCE_POOL_NAME", "string", z.string(), "an InferencePool name"),
  s("prefillInferencePoolName", "DYN_EPP_PREFILL_INFERENCE_POOL_NAME", "string", z.string(), "an InferencePool name"),
  s(
    "topologyMode",
    "DYN_EPP_TOPOLOGY_MODE",
    "enum",
    oneOf(["aggregated", "disaggregated"]),
    "aggregated or disaggregated",
  ),
  s("selectionIndexerThreads", "DYN_EPP_SELECTION_INDEXER_THREADS", "int", intAtLeast(1), "an integer ≥ 1"),
  s("tokenizerThreads", "DYN_EPP_TOKENIZER_THREADS", "int", intAtLeast(1), "an integer ≥ 1"),
  s(
    "tokenizerServiceUrl",
    "DYN_EPP_TOKENIZER_SERVICE_URL",
    "string",
    z.url({ protocol: /^https?$/ }),
    "an http(s) URL",
  ),
  s("tokenizerProtocol", "DYN_EPP_TOKENIZER_PROTOCOL", "enum", oneOf(["vllm-render"]), "vllm-render"),
  s("tokenizationTimeoutMs", "DYN_EPP_TOKENIZATION_TIMEOUT_MS", "int", intAtLeast(1), "an integer ≥ 1"),
  s("tokenizerMaxResponseBytes", "DYN_EPP_TOKENIZER_MAX_RESPONSE_BYTES", "int", intAtLeast(1), "an integer ≥ 1"),
  s("peerService", "DYN_EPP_PEER_SERVICE", "string", z.string().regex(/^[a-z0-9.-]+$/i), "a DNS name"),
  s("podIp", "POD_IP", "string", z.string().min(1), "an IP address"),
  s(
    "replicaSyncPort",
    "DYN_EPP_REPLICA_SYNC_PORT",
    "int",
    intAtLeast(1).refine((v) => v <= 65535),
    PORT,
  ),
  s(
    "replicaLeaseSecs",
    "DYN_ROUTER_REPLICA_LEASE_SECS",
    "number",
    finite.refine((v) => v >= MIN_REPLICA_LEASE_SECS && v <= MAX_REPLICA_LEASE_SECS),
    `seconds from ${MIN_REPLICA_LEASE_SECS} to ${MAX_REPLICA_LEASE_SECS}`,
  ),
];

export const DEFAULT_EPP_SETTINGS: Readonly<EppSettings> = Object.freeze({
  mode: "dynamo",
  secureServing: true,
  extProcPort: 9002,
  healthPort: 9003,
  metricsPort: 9090,
  eventLoopResolutionMs: 10,
  probePort: 0,
  probeTimeoutMs: 1000,
  probeMaxInflight: 4,
  shutdownPropagationSecs: 5,
  shutdownDrainSecs: 30,
  maxInflightRequests: 1024,
  maxRequestBodyBytes: 32 * 1024 * 1024,
  maxTokenizationBacklogBytes: 32 * 1024 * 1024,
  shedRetryAfterSecs: 1,
  metadataHeader: "x-dynamo-meta-",
  conformanceHooks: false,
  logLevel: "info",
  modelName: undefined,
  inferencePoolName: undefined,
  prefillInferencePoolName: undefined,
  topologyMode: "aggregated",
  selectionIndexerThreads: 4,
  tokenizerThreads: undefined,
  tokenizerServiceUrl: undefined,
  tokenizerProtocol: "vllm-render",
  tokenizationTimeoutMs: 5000,
  tokenizerMaxResponseBytes: 16 * 1024 * 1024,
  peerService: undefined,
  podIp: undefined,
  replicaSyncPort: 9092,
  replicaLeaseSecs: 10,
});

/** One environment variable the endpoint picker reads. */
export interface EnvironmentVariable {
  readonly name: string;
  /** The value in force when the variable is unset (as text), or undefined when unset means "none". */
  readonly default: string | undefined;
  /** True when the EPP cannot start without it in the deployment it names (`requiredWhen`). */
  readonly required: boolean;
  /** When it is required (absent: always, if `required`). */
  readonly requiredWhen?: string;
  /** Which part reads it: the EPP itself, the router, the router service or worker discovery. */
  readonly readBy: "epp" | "router" | "router-service" | "discovery";
  /** A newer name that wins over this one when both are set. */
  readonly aliasOf?: string;
}

function text(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (Array.isArray(value)) return value.join(",");
  return String(value);
}

function fromTable<K extends string>(
  table: readonly Setting<K>[],
  defaults: Readonly<Record<K, unknown>>,
  readBy: EnvironmentVariable["readBy"],
): EnvironmentVariable[] {
  return table.flatMap((st) =>
    st.env.map((name, i) => ({
      name,
      default: text(defaults[st.key]),
      required: false,
      readBy,
      ...(i > 0 ? { aliasOf: st.env[0]! } : {}),
    })),
  );
}

/** Discovery's variables (`@dynamo/discovery`), read when the backend needs them. */
const DISCOVERY_VARIABLES: readonly EnvironmentVariable[] = [
  {
    name: "POD_NAMESPACE",
    default: undefined,
    required: true,
    requiredWhen: "Kubernetes discovery (the default)",
    readBy: "discovery",
  },
  { name: "DYN_KUBE_DISCOVERY_MODE", default: "pod", required: false, readBy: "discovery" },
  {
    name: "DYN_EPP_WORKER_ROLE_LABEL",
    default: "nvidia.com/dynamo-sub-component-type",
    required: false,
    readBy: "discovery",
  },
  { name: "DYN_EPP_KV_EVENT_PORT", default: "5557", required: false, readBy: "discovery" },
  { name: "DYN_EPP_KV_EVENT_REPLAY_PORT", default: undefined, required: false, readBy: "discovery" },
  { name: "DYN_EPP_TOTAL_KV_BLOCKS", default: undefined, required: false, readBy: "discovery" },
  { name: "DYN_EPP_MAX_NUM_BATCHED_TOKENS", default: undefined, required: false, readBy: "discovery" },
  { name: "DYN_EPP_PREFILL_MAX_NUM_BATCHED_TOKENS", default: undefined, required: false, readBy: "discovery" },
  { name: "DYN_EPP_DECODE_MAX_NUM_BATCHED_TOKENS", default: undefined, required: false, readBy: "discovery" },
  {
    name: "DYN_DISCOVERY_FILE",
    default: undefined,
    required: true,
    requiredWhen: "DYN_DISCOVERY_BACKEND=static without DYN_DISCOVERY_WORKERS",
    readBy: "discovery",
  },
  {
    name: "DYN_DISCOVERY_WORKERS",
    default: undefined,
    required: true,
    requiredWhen: "DYN_DISCOVERY_BACKEND=static without DYN_DISCOVERY_FILE",
    readBy: "discovery",
  },
];

const REQUIRED_IN_STANDALONE = new Set(["DYN_EPP_INFERENCE_POOL_NAME", "DYN_MODEL_NAME"]);

/**
 * Every environment variable the endpoint picker reads, with its default and whether it is required:
 * the EPP's own table, the router service's, the router's (`DYN_ROUTER_*`, thresholds, block size) and
 * discovery's. Deployment checks compare a rendered container environment against this list.
 */
export const EPP_ENVIRONMENT: readonly EnvironmentVariable[] = [
  ...fromTable(EPP_SETTINGS, DEFAULT_EPP_SETTINGS, "epp").map((v) =>
    REQUIRED_IN_STANDALONE.has(v.name) ? { ...v, required: true, requiredWhen: "DYN_EPP_MODE=standalone" } : v,
  ),
  ...fromTable(SERVICE_SETTINGS, DEFAULT_SERVICE_SETTINGS, "router-service").map((v) =>
    // The EPP discovers workers in Kubernetes unless told otherwise (the service alone defaults to none).
    v.name === "DYN_DISCOVERY_BACKEND" ? { ...v, default: "kubernetes" } : v,
  ),
  ...fromTable(SETTINGS, DEFAULT_SETTINGS, "router"),
  ...DISCOVERY_VARIABLES,
].filter((v, i, all) => all.findIndex((o) => o.name === v.name) === i);

/** The names in `EPP_ENVIRONMENT`. */
export const EPP_VARIABLE_NAMES: ReadonlySet<string> = new Set(EPP_ENVIRONMENT.map((v) => v.name));
