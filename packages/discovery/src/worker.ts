/** Roles a worker can have: the prefill phase, the decode phase, or both (aggregated). */
export const WORKER_ROLES = ["prefill", "decode", "both"] as const;

export type WorkerRole = (typeof WORKER_ROLES)[number];

/** Tokenizer files a model card must carry. */
export const REQUIRED_MODEL_CARD_FILES = ["tokenizer.json", "tokenizer_config.json"] as const;
/** Tokenizer files a model card may carry. */
export const OPTIONAL_MODEL_CARD_FILES = ["chat_template.jinja", "generation_config.json"] as const;

/** Where one model-card file lives: in memory, on local disk, behind a URL, or in a NATS object store. */
export type ModelCardFileSource =
  | { kind: "bytes"; bytes: Uint8Array }
  | { kind: "path"; path: string }
  | { kind: "url"; url: string }
  | { kind: "nats-object"; bucket: string; object: string; digest?: string; size?: number };

/** The model card: tokenizer files by file name (`tokenizer.json`, `tokenizer_config.json`, ...). */
export interface ModelCard {
  files: Readonly<Record<string, ModelCardFileSource>>;
}

/** KV-cache event endpoints of a worker, one per data-parallel rank. */
export interface KvEventEndpoints {
  /** ZeroMQ PUB endpoints (`tcp://ip:port`); index `i` is DP rank `dpStartRank + i`. */
  endpoints: readonly string[];
  /** Optional ZeroMQ ROUTER replay endpoints, same indexing. */
  replayEndpoints?: readonly string[];
}

/** Capacity hints the router may use when no live metrics are available. */
export interface KvCapacityHints {
  /** Total KV blocks per DP rank. */
  totalKvBlocks?: number;
  /** Scheduler token budget per step. */
  maxNumBatchedTokens?: number;
}

/** One routable worker as discovery reports it. Values are immutable snapshots. */
export interface WorkerInfo {
  /** Unsigned 64-bit worker id (print with `formatWorkerId`, decimal). */
  id: bigint;
  /** Human-readable name the id was derived from (pod name, `pod/container`, or the configured name). */
  name: string;
  role: WorkerRole;
  /** Dynamo namespace the worker registered under (empty when the backend has none). */
  namespace: string;
  /** Dynamo component (e.g. `backend`), empty when unknown. */
  component: string;
  /** HTTP endpoint `host:port` of DP rank `dpStartRank`. */
  httpEndpoint: string;
  /** HTTP endpoint `host:port` per DP rank (length `dpSize`); all equal when the worker has one port. */
  rankHttpEndpoints: readonly string[];
  dpSize: number;
  dpStartRank: number;
  kvEvents?: KvEventEndpoints;
  modelName?: string;
  blockSize?: number;
  capacity?: KvCapacityHints;
  modelCard?: ModelCard;
}

/** One change of the worker list. `updated` carries the previous value. */
export type WorkerChange =
  | { type: "added"; worker: WorkerInfo }
  | { type: "updated"; worker: WorkerInfo; previous: WorkerInfo }
  | { type: "removed"; worker: WorkerInfo };

/** Structural equality of worker snapshots (bigints, byte arrays, nested records). */
export function sameWorker(a: WorkerInfo, b: WorkerInfo): boolean {
  return deepEqual(a, b);
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && Buffer.compare(a, b) === 0;
  }
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const aEntries = Object.entries(a).filter(([, v]) => v !== undefined);
  const bRecord = b as Record<string, unknown>;
  const bCount = Object.values(bRecord).filter((v) => v !== undefined).length;
  if (aEntries.length !== bCount) return false;
  return aEntries.every(([key, value]) => deepEqual(value, bRecord[key]));
}
