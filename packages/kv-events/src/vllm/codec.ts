import { Encoder } from "@msgpack/msgpack";

/**
 * vLLM `KVEventBatch` msgpack codec. Decodes both encodings at both levels: legacy positional arrays
 * (`array_like=True`, event tag at element 0) and maps (event tag under `"type"`), batches as arrays or
 * maps; block hashes as uint64, negative int64 (bits reinterpreted) or bytes (last 8 bytes big-endian).
 * Trailing optional fields may be absent; unknown event tags, unknown map keys and extra trailing array
 * elements are ignored.
 */

/** `BlockStored`: a run of newly cached full blocks continuing `parentBlockHash` (null: from block 0). */
export interface VllmBlockStored {
  readonly type: "BlockStored";
  /** Engine block hashes, normalised to unsigned 64-bit. */
  readonly blockHashes: readonly bigint[];
  readonly parentBlockHash: bigint | null;
  /**
   * Tokens of the blocks; null when the publisher left them out (e.g. a lower tier announcing blocks the
   * engine already stored with their tokens): their router hashes then come from those earlier stores.
   */
  readonly tokenIds: readonly number[] | null;
  /** Null only together with `tokenIds`. */
  readonly blockSize: number | null;
  readonly loraId?: number | null;
  readonly medium?: string | null;
  readonly loraName?: string | null;
  readonly extraKeys?: readonly unknown[] | null;
  readonly groupIdx?: number | null;
  readonly kvCacheSpecKind?: string | null;
  readonly kvCacheSpecSlidingWindow?: number | null;
  /** Map-encoding extra (Dynamo): cache namespace feeding the hash salt. */
  readonly cacheSalt?: string | null;
  /** Map-encoding extra (Dynamo): `LOCAL` or `REMOTE`. */
  readonly locality?: string | null;
}

/** `BlockRemoved`: blocks evicted, by engine hash. */
export interface VllmBlockRemoved {
  readonly type: "BlockRemoved";
  readonly blockHashes: readonly bigint[];
  readonly medium?: string | null;
  readonly groupIdx?: number | null;
  readonly kvCacheSpecKind?: string | null;
  readonly kvCacheSpecSlidingWindow?: number | null;
  readonly locality?: string | null;
}

/** `AllBlocksCleared`: the prefix cache was reset. */
export interface VllmAllBlocksCleared {
  readonly type: "AllBlocksCleared";
}

export type VllmKvEvent = VllmBlockStored | VllmBlockRemoved | VllmAllBlocksCleared;

export interface VllmEventBatch {
  /** Publisher wall clock, seconds since the epoch. */
  readonly ts: number;
  readonly events: readonly VllmKvEvent[];
  /** Data-parallel rank of the publisher; null when the publisher did not say. */
  readonly dataParallelRank: number | null;
}

/** A decoded batch plus what was left out of it. */
export interface DecodedVllmBatch extends VllmEventBatch {
  /** Events with a tag other than the three known ones (skipped). */
  readonly unknownEvents: number;
  /** Events whose fields did not have the expected types (skipped, with the first reason). */
  readonly invalidEvents: number;
  readonly firstInvalidReason?: string;
}

/** The payload is not a `KVEventBatch` at all (not msgpack, wrong top-level shape). */
export class VllmDecodeError extends Error {
  override readonly name = "VllmDecodeError";
}

/** Array (legacy, positional) or map (keyed by field name) encoding. */
export type VllmEncoding = "array" | "map";

export interface VllmEncodeOptions {
  /** Encoding of each event. Default `array`. */
  readonly eventEncoding?: VllmEncoding;
  /** Encoding of the batch. Default `array` (what vLLM 0.26 sends even with map events). */
  readonly batchEncoding?: VllmEncoding;
  /** How block hashes are written: `uint` (uint64), `int64` (signed bits) or `bytes` (8 bytes big-endian). Default `uint`. */
  readonly hashEncoding?: "uint" | "int64" | "bytes";
}

const STORED_FIELDS = [
  "block_hashes",
  "parent_block_hash",
  "token_ids",
  "block_size",
  "lora_id",
  "medium",
  "lora_name",
  "extra_keys",
  "group_idx",
  "kv_cache_spec_kind",
  "kv_cache_spec_sliding_window",
] as const;
/** Positions 1..7 of `BlockStored` are always written; later ones are omitted when default (nil). */
const STORED_REQUIRED = 7;
const REMOVED_FIELDS = [
  "block_hashes",
  "medium",
  "group_idx",
  "kv_cache_spec_kind",
  "kv_cache_spec_sliding_window",
] as const;
const REMOVED_REQUIRED = 2;

const encoder = new Encoder({ useBigInt64: true, ignoreUndefined: true });

/** Most events a batch may carry; a payload declaring more is refused before it is decoded. */
export const MAX_EVENTS_PER_BATCH = 4096;

/**
 * Why an event is invalid. Deliberately not an `Error`: it is thrown once per bad event on the ingest
 * path, and capturing a stack trace each time would let a payload of many bad events stall the process.
 */
class InvalidField {
  constructor(readonly message: string) {}
}

function invalid(what: string): never {
  throw new InvalidField(what);
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

/** Normalises one engine block hash to an unsigned 64-bit id. */
export function normaliseBlockHash(value: unknown): bigint {
  if (typeof value === "bigint") {
    if (value < -(1n << 63n) || value >= 1n << 64n) invalid(`block hash out of 64-bit range: ${value}`);
    return BigInt.asUintN(64, value);
  }
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) invalid(`block hash is not an integer: ${value}`);
    return BigInt.asUintN(64, BigInt(value));
  }
  if (value instanceof Uint8Array) {
    let out = 0n;
    for (let i = Math.max(0, value.length - 8); i < value.length; i++) out = (out << 8n) | BigInt(value[i]!);
    return out;
  }
  return invalid(`block hash of unexpected type ${describe(value)}`);
}

export function describe(value: unknown): string {
  if (value === null) return "nil";
  if (Array.isArray(value)) return "array";
  if (value instanceof Uint8Array) return "bytes";
  return typeof value;
}

function hashList(value: unknown, field: string): bigint[] {
  if (!Array.isArray(value)) invalid(`${field}: expected an array, got ${describe(value)}`);
  return value.map(normaliseBlockHash);
}

function optionalHash(value: unknown): bigint | null {
  return value === null || value === undefined ? null : normaliseBlockHash(value);
}

function toNumber(value: unknown, field: string): number {
  if (typeof value === "number" && Number.isInteger(value)) return value;
  if (
    typeof value === "bigint" &&
    value >= BigInt(Number.MIN_SAFE_INTEGER) &&
    value <= BigInt(Number.MAX_SAFE_INTEGER)
  ) {
    return Number(value);
  }
  return invalid(`${field}: expected an integer, got ${describe(value)}`);
}

function optionalNumber(value: unknown, field: string): number | null {
  return value === null || value === undefined ? null : toNumber(value, field);
}

function optionalString(value: unknown, field: string): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === "string") return value;
  if (value instanceof Uint8Array)
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("utf8");
  return invalid(`${field}: expected a string, got ${describe(value)}`);
}

function tokenList(value: unknown): number[] {
  if (!Array.isArray(value)) invalid(`token_ids: expected an array, got ${describe(value)}`);
  for (let i = 0; i < value.length; i++) {
    const t: unknown = value[i];
    // 64-bit msgpack integers arrive as bigints: range-check them too (2^32 + 5 must not hash as 5).
    if (typeof t === "bigint") {
      if (t < 0n || t > 0xffffffffn) invalid(`token_ids[${i}]: not a u32 token id: ${t}`);
      value[i] = Number(t);
    } else if (typeof t !== "number") value[i] = toNumber(t, `token_ids[${i}]`);
    else if (!Number.isInteger(t) || t < 0 || t > 0xffffffff) invalid(`token_ids[${i}]: not a u32 token id: ${t}`);
  }
  return value as number[];
}

/** Reads an event's fields by name, whatever the encoding. */
type FieldReader = (name: string) => unknown;

function positionalReader(fields: readonly string[], event: readonly unknown[]): FieldReader {
  return (name) => {
    const at = fields.indexOf(name);
    return at < 0 ? undefined : event[at + 1];
  };
}

function decodeStored(get: FieldReader): VllmBlockStored {
  const extraKeys = get("extra_keys");
  if (extraKeys !== null && extraKeys !== undefined && !Array.isArray(extraKeys))
    invalid("extra_keys: expected an array");
  const rawTokens = get("token_ids");
  const tokenIds = rawTokens === null || rawTokens === undefined ? null : tokenList(rawTokens);
  const blockHashes = hashList(get("block_hashes"), "block_hashes");
  if (blockHashes.length === 0 && tokenIds !== null && tokenIds.length > 0)
    invalid(`BlockStored with ${tokenIds.length} token_ids but no block_hashes`);
  return {
    type: "BlockStored",
    blockHashes,
    parentBlockHash: optionalHash(get("parent_block_hash")),
    tokenIds,
    blockSize:
      tokenIds === null ? optionalNumber(get("block_size"), "block_size") : toNumber(get("block_size"), "block_size"),
    loraId: optionalNumber(get("lora_id"), "lora_id"),
    medium: optionalString(get("medium"), "medium"),
    loraName: optionalString(get("lora_name"), "lora_name"),
    extraKeys: (extraKeys as unknown[] | null | undefined) ?? null,
    groupIdx: optionalNumber(get("group_idx"), "group_idx"),
    kvCacheSpecKind: optionalString(get("kv_cache_spec_kind"), "kv_cache_spec_kind"),
    kvCacheSpecSlidingWindow: optionalNumber(get("kv_cache_spec_sliding_window"), "kv_cache_spec_sliding_window"),
    cacheSalt: optionalString(get("cache_salt"), "cache_salt"),
    locality: optionalString(get("locality"), "locality"),
  };
}

function decodeRemoved(get: FieldReader): VllmBlockRemoved {
  return {
    type: "BlockRemoved",
    blockHashes: hashList(get("block_hashes"), "block_hashes"),
    medium: optionalString(get("medium"), "medium"),
    groupIdx: optionalNumber(get("group_idx"), "group_idx"),
    kvCacheSpecKind: optionalString(get("kv_cache_spec_kind"), "kv_cache_spec_kind"),
    kvCacheSpecSlidingWindow: optionalNumber(get("kv_cache_spec_sliding_window"), "kv_cache_spec_sliding_window"),
    locality: optionalString(get("locality"), "locality"),
  };
}

/** One event, or `"unknown"` for a tag this codec does not handle. Throws `InvalidField`. */
function decodeEvent(raw: unknown): VllmKvEvent | "unknown" {
  let tag: unknown;
  let storedGet: FieldReader;
  let removedGet: FieldReader;
  if (Array.isArray(raw)) {
    tag = raw[0];
    storedGet = positionalReader(STORED_FIELDS, raw);
    removedGet = positionalReader(REMOVED_FIELDS, raw);
  } else if (isRecord(raw)) {
    tag = raw["type"];
    storedGet = removedGet = (name) => raw[name];
  } else {
    return invalid(`event: expected an array or a map, got ${describe(raw)}`);
  }
  if (tag instanceof Uint8Array) tag = optionalString(tag, "type");
  switch (tag) {
    case "BlockStored":
      return decodeStored(storedGet);
    case "BlockRemoved":
      return decodeRemoved(removedGet);
    case "AllBlocksCleared":
      return { type: "AllBlocksCleared" };
    default:
      if (typeof tag !== "string") invalid(`event tag: expected a string, got ${describe(tag)}`);
      return "unknown";
  }
}

/** The outcome of decoding one raw event value: the event, an unknown tag, or why it is invalid. */
export type EventDecoding = VllmKvEvent | "unknown" | { readonly invalid: string };

/** Decodes one raw (msgpack-decoded) event value, without throwing. */
export function decodeEventValue(raw: unknown): EventDecoding {
  // The cheap rejection first: no exception for what is not even an event.
  if (!Array.isArray(raw) && !isRecord(raw))
    return { invalid: `event: expected an array or a map, got ${describe(raw)}` };
  try {
    return decodeEvent(raw);
  } catch (err) {
    if (!(err instanceof InvalidField)) throw err;
    return { invalid: err.message };
  }
}

/** Reads an optional data-parallel rank, for the batch decoder. */
export function batchRank(value: unknown): number | null | { readonly invalid: string } {
  try {
    return optionalNumber(value, "data_parallel_rank");
  } catch (err) {
    if (!(err instanceof InvalidField)) throw err;
    return { invalid: err.message };
  }
}

function encodeHash(hash: bigint, how: NonNullable<VllmEncodeOptions["hashEncoding"]>): bigint | number | Uint8Array {
  if (how === "bytes") {
    const out = new Uint8Array(8);
    new DataView(out.buffer).setBigUint64(0, BigInt.asUintN(64, hash));
    return out;
  }
  if (how === "int64") return BigInt.asIntN(64, hash);
  return hash <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(hash) : hash;
}

function storedValues(e: VllmBlockStored, how: NonNullable<VllmEncodeOptions["hashEncoding"]>): unknown[] {
  return [
    e.blockHashes.map((h) => encodeHash(h, how)),
    e.parentBlockHash === null ? null : encodeHash(e.parentBlockHash, how),
    e.tokenIds,
    e.blockSize,
    e.loraId ?? null,
    e.medium ?? null,
    e.loraName ?? null,
    e.extraKeys ?? null,
    e.groupIdx ?? null,
    e.kvCacheSpecKind ?? null,
    e.kvCacheSpecSlidingWindow ?? null,
  ];
}

function removedValues(e: VllmBlockRemoved, how: NonNullable<VllmEncodeOptions["hashEncoding"]>): unknown[] {
  return [
    e.blockHashes.map((h) => encodeHash(h, how)),
    e.medium ?? null,
    e.groupIdx ?? null,
    e.kvCacheSpecKind ?? null,
    e.kvCacheSpecSlidingWindow ?? null,
  ];
}

/** Positional form with msgspec's `omit_defaults`: trailing nil fields past the required ones are dropped. */
function positional(tag: string, values: unknown[], required: number): unknown[] {
  let end = values.length;
  while (end > required && values[end - 1] === null) end--;
  return [tag, ...values.slice(0, end)];
}

function keyed(
  tag: string,
  names: readonly string[],
  values: unknown[],
  required: number,
  extras: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { type: tag };
  names.forEach((name, i) => {
    if (i < required || values[i] !== null) out[name] = values[i];
  });
  for (const [key, value] of Object.entries(extras)) if (value !== null && value !== undefined) out[key] = value;
  return out;
}

function encodeEvent(e: VllmKvEvent, options: VllmEncodeOptions): unknown {
  const how = options.hashEncoding ?? "uint";
  const asMap = options.eventEncoding === "map";
  if (e.type === "AllBlocksCleared") return asMap ? { type: e.type } : [e.type];
  if (e.type === "BlockStored") {
    const values = storedValues(e, how);
    return asMap
      ? keyed(e.type, STORED_FIELDS, values, STORED_REQUIRED, { cache_salt: e.cacheSalt, locality: e.locality })
      : positional(e.type, values, STORED_REQUIRED);
  }
  const values = removedValues(e, how);
  return asMap
    ? keyed(e.type, REMOVED_FIELDS, values, REMOVED_REQUIRED, { locality: e.locality })
    : positional(e.type, values, REMOVED_REQUIRED);
}

/** Encodes a batch the way a vLLM publisher would (see `VllmEncodeOptions` for the shapes). */
export function encodeVllmEventBatch(batch: VllmEventBatch, options: VllmEncodeOptions = {}): Uint8Array {
  const events = batch.events.map((e) => encodeEvent(e, options));
  const root =
    options.batchEncoding === "map"
      ? { ts: batch.ts, events, data_parallel_rank: batch.dataParallelRank }
      : batch.dataParallelRank === null
        ? [batch.ts, events]
        : [batch.ts, events, batch.dataParallelRank];
  return encoder.encode(root);
}
