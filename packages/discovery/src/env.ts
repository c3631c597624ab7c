import type { KubernetesDiscoveryOptions } from "./kubernetes/backend.js";
import { envValue, resolveNamespacePrefix } from "./namespace.js";
import type { NatsDiscoveryOptions } from "./nats/discovery.js";
import type { StaticDiscoveryOptions } from "./static/backend.js";

/** Default NATS server when `NATS_SERVER` is unset. */
export const DEFAULT_NATS_SERVER = "nats://localhost:4222";

/** A configuration error naming the environment variable. */
export class DiscoveryConfigError extends Error {}

function positiveInt(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const text = envValue(env, name);
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0)
    throw new DiscoveryConfigError(`${name}="${text}" is not a positive integer`);
  return value;
}

/** An environment value that must be one of `allowed`; throws naming the variable otherwise. */
export function oneOf<T extends string>(env: NodeJS.ProcessEnv, name: string, allowed: readonly T[]): T | undefined {
  const text = envValue(env, name);
  if (text === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(text)) {
    throw new DiscoveryConfigError(`${name}="${text}" must be one of ${allowed.join(", ")}`);
  }
  return text as T;
}

/**
 * Kubernetes options from the environment: `POD_NAMESPACE` (required), `DYN_EPP_INFERENCE_POOL_NAME`,
 * `DYN_NAMESPACE_PREFIX` / `DYN_NAMESPACE`, `DYN_KUBE_DISCOVERY_MODE` (`pod` | `container`),
 * `DYN_EPP_WORKER_ROLE_LABEL`, `DYN_EPP_KV_EVENT_PORT`, `DYN_EPP_KV_EVENT_REPLAY_PORT`, `DYN_MODEL_NAME`,
 * `DYN_KV_CACHE_BLOCK_SIZE`, `DYN_EPP_TOTAL_KV_BLOCKS`, `DYN_EPP_MAX_NUM_BATCHED_TOKENS` (and its
 * `DYN_EPP_PREFILL_…` / `DYN_EPP_DECODE_…` variants for workers of that role).
 */
export function kubernetesOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): KubernetesDiscoveryOptions {
  const namespace = envValue(env, "POD_NAMESPACE");
  if (namespace === undefined) throw new DiscoveryConfigError("POD_NAMESPACE is required for Kubernetes discovery");
  const options: KubernetesDiscoveryOptions = {
    namespace,
    namespacePrefix: resolveNamespacePrefix(env),
    mode: oneOf(env, "DYN_KUBE_DISCOVERY_MODE", ["pod", "container"] as const) ?? "pod",
  };
  const pool = envValue(env, "DYN_EPP_INFERENCE_POOL_NAME");
  if (pool !== undefined) options.inferencePool = pool;
  const roleLabel = envValue(env, "DYN_EPP_WORKER_ROLE_LABEL");
  if (roleLabel !== undefined) options.roleLabel = roleLabel;
  const model = envValue(env, "DYN_MODEL_NAME");
  if (model !== undefined) options.modelName = model;
  const numbers: [keyof KubernetesDiscoveryOptions, string][] = [
    ["kvEventPort", "DYN_EPP_KV_EVENT_PORT"],
    ["kvEventReplayPort", "DYN_EPP_KV_EVENT_REPLAY_PORT"],
    ["blockSize", "DYN_KV_CACHE_BLOCK_SIZE"],
    ["totalKvBlocks", "DYN_EPP_TOTAL_KV_BLOCKS"],
    ["maxNumBatchedTokens", "DYN_EPP_MAX_NUM_BATCHED_TOKENS"],
    ["prefillMaxNumBatchedTokens", "DYN_EPP_PREFILL_MAX_NUM_BATCHED_TOKENS"],
    ["decodeMaxNumBatchedTokens", "DYN_EPP_DECODE_MAX_NUM_BATCHED_TOKENS"],
  ];
  for (const [key, name] of numbers) {
    const value = positiveInt(env, name);
    if (value !== undefined) Object.assign(options, { [key]: value });
  }
  return options;
}

/**
 * NATS watcher options from the environment: `NATS_SERVER` (comma-separated URLs, default
 * `nats://localhost:4222`), the namespace prefix, and `DYN_COMPONENT_NAME` as a component filter
 * when set (all components otherwise, so prefill and decode components are both seen).
 */
export function natsOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): NatsDiscoveryOptions {
  const options: NatsDiscoveryOptions = {
    servers: (envValue(env, "NATS_SERVER") ?? DEFAULT_NATS_SERVER).split(",").map((url) => url.trim()),
    namespacePrefix: resolveNamespacePrefix(env),
  };
  const component = envValue(env, "DYN_COMPONENT_NAME");
  if (component !== undefined) options.component = component;
  return options;
}

/** Static options from the environment: `DYN_DISCOVERY_FILE` (watched) or `DYN_DISCOVERY_WORKERS` (inline YAML/JSON). */
export function staticOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): StaticDiscoveryOptions {
  const file = envValue(env, "DYN_DISCOVERY_FILE");
  if (file !== undefined) return { file };
  const text = envValue(env, "DYN_DISCOVERY_WORKERS");
  if (text !== undefined) return { text, sourceName: "DYN_DISCOVERY_WORKERS" };
  throw new DiscoveryConfigError("static discovery needs DYN_DISCOVERY_FILE or DYN_DISCOVERY_WORKERS");
}

/** Backend names accepted by `DYN_DISCOVERY_BACKEND` and the command line. */
export const DISCOVERY_BACKENDS = ["static", "nats", "kubernetes"] as const;
export type DiscoveryBackendName = (typeof DISCOVERY_BACKENDS)[number];
