import { formatWorkerId, parseWorkerId } from "../worker-id.js";

/** JetStream KV bucket holding one entry per registered worker. */
export const DEFAULT_INSTANCE_BUCKET = "dynamo-instances";
/** JetStream object-store bucket holding model-card files. */
export const DEFAULT_MODEL_CARD_BUCKET = "dynamo-model-cards";

const KEY_TOKEN = /^[A-Za-z0-9_-]+$/;

/** Throws unless `value` can be one token of a KV key (letters, digits, `_`, `-`). */
export function assertKeyToken(what: string, value: string): void {
  if (!KEY_TOKEN.test(value)) throw new RangeError(`${what} "${value}" must match [A-Za-z0-9_-]+`);
}

/** KV key of a worker: `<namespace>.<component>.<decimal id>`. */
export function instanceKey(namespace: string, component: string, id: bigint): string {
  assertKeyToken("namespace", namespace);
  assertKeyToken("component", component);
  return `${namespace}.${component}.${formatWorkerId(id)}`;
}

/** Splits an instance key; `undefined` when it does not have that shape. */
export function parseInstanceKey(key: string): { namespace: string; component: string; id: bigint } | undefined {
  const parts = key.split(".");
  if (parts.length !== 3 || !parts.every((part) => KEY_TOKEN.test(part))) return undefined;
  try {
    return { namespace: parts[0]!, component: parts[1]!, id: parseWorkerId(parts[2]!) };
  } catch {
    return undefined;
  }
}
