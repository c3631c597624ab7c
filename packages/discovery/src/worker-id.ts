import { xxh3 } from "@node-rs/xxhash";

const U64_MAX = (1n << 64n) - 1n;
const MAIN_CONTAINER = "main";

/**
 * The shared worker-id hash: XXH3-64 (seed 0) of the UTF-8 bytes of `name`, as an unsigned 64-bit
 * bigint. EPP, frontend sidecar and simulated engine all derive ids with this function, so the same
 * pod name yields the same id everywhere.
 */
export function workerIdFromName(name: string): bigint {
  return xxh3.xxh64(Buffer.from(name, "utf8"), 0n);
}

/** Worker id of a pod in `pod` discovery mode: the hash of the pod name. */
export function podWorkerId(podName: string): bigint {
  return workerIdFromName(podName);
}

/**
 * Worker id of one container in `container` discovery mode: the hash of `<pod>/<container>`, except
 * that the container named `main` has the pod's id (so switching modes keeps single-engine pods stable).
 */
export function containerWorkerId(podName: string, containerName: string): bigint {
  return containerName === MAIN_CONTAINER ? podWorkerId(podName) : workerIdFromName(`${podName}/${containerName}`);
}

/** Decimal text of a worker id (the form used in headers, logs and files). */
export function formatWorkerId(id: bigint): string {
  return id.toString(10);
}

/** Parses a decimal u64 worker id; throws a `RangeError` naming the text when it is not one. */
export function parseWorkerId(text: string): bigint {
  const trimmed = text.trim();
  if (!/^\d{1,20}$/.test(trimmed)) throw new RangeError(`worker id "${text}" is not a decimal u64`);
  const id = BigInt(trimmed);
  if (id > U64_MAX) throw new RangeError(`worker id "${text}" exceeds 2^64-1`);
  return id;
}
