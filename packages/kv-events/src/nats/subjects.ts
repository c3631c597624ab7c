/** NATS names of the KV-event plane. */

/** Subject of a component's router events: `namespace.{ns}.component.{comp}.kv-events`. */
export function kvEventSubject(namespace: string, component: string): string {
  return `namespace.${namespace}.component.${component}.kv-events`;
}

/**
 * Subject on which the bridge of one worker rank answers event-range queries:
 * `namespace.{ns}.component.{comp}.worker_kv_indexer_query_dp{rank}.{workerId}` (worker id in decimal).
 */
export function workerQuerySubject(namespace: string, component: string, workerId: bigint, dpRank: number): string {
  return `namespace.${namespace}.component.${component}.worker_kv_indexer_query_dp${dpRank}.${workerId}`;
}

/** JetStream stream of the durable mode: `namespace-{ns}-component-{comp}-kv-events`. */
export function kvEventStreamName(namespace: string, component: string): string {
  return `namespace-${namespace}-component-${component}-kv-events`.replace(/[.*>\s]/g, "_");
}
