/** Dynamo namespace used when neither `DYN_NAMESPACE_PREFIX` nor `DYN_NAMESPACE` is set. */
export const DEFAULT_DYNAMO_NAMESPACE = "vllm-agg";

/** An environment value, trimmed; empty counts as unset. */
export function envValue(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name]?.trim();
  return value ? value : undefined;
}

/**
 * The Dynamo namespace prefix workers are matched against: `DYN_NAMESPACE_PREFIX`, else
 * `DYN_NAMESPACE`, else `vllm-agg`. Matching is by prefix, so `vllm-agg` also follows workers that a
 * rolling update moved to a generation-suffixed namespace such as `vllm-agg-7d9f`.
 */
export function resolveNamespacePrefix(env: NodeJS.ProcessEnv = process.env): string {
  return envValue(env, "DYN_NAMESPACE_PREFIX") ?? envValue(env, "DYN_NAMESPACE") ?? DEFAULT_DYNAMO_NAMESPACE;
}

/** True when the worker's namespace belongs to the resolved prefix. */
export function namespaceMatches(prefix: string, namespace: string): boolean {
  return namespace.startsWith(prefix);
}
