import { isInteger, parse, stringify } from "lossless-json";
import { STORAGE_TIERS, type KvCacheEventData, type RouterEvent, type StorageTier } from "@dynamo/kv-indexer";

/**
 * JSON codec of `RouterEvent` in Dynamo's serde shape:
 * `{"worker_id", "storage_tier", "event": {"event_id", "dp_rank", "data": {"stored": {...}} | {"removed": {...}} | "cleared"}}`.
 * 64-bit values are written as bare JSON integers and parsed without precision loss.
 */

/** A JSON document that is not a valid router event; the message names the offending field. */
export class RouterEventDecodeError extends Error {
  override readonly name = "RouterEventDecodeError";
}

const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);

function parseNumber(text: string): bigint | number {
  return isInteger(text) ? BigInt(text) : Number(text);
}

/** Parses JSON keeping every integer as a `bigint` (no precision loss above 2^53). */
export function parseLosslessJson(text: string): unknown {
  return parse(text, null, parseNumber);
}

/** Serialises a value to JSON, writing `bigint`s as bare integers. */
export function stringifyLosslessJson(value: unknown): string {
  const out = stringify(value);
  if (out === undefined) throw new TypeError("value is not serialisable to JSON");
  return out;
}

function fail(path: string, what: string): never {
  throw new RouterEventDecodeError(`${path}: ${what}`);
}

function asObject(value: unknown, path: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail(path, "expected an object");
  return value as Record<string, unknown>;
}

function asU64(value: unknown, path: string): bigint {
  if (typeof value !== "bigint") fail(path, "expected an unsigned 64-bit integer");
  if (value < 0n || value > U64_MAX) fail(path, `out of the u64 range: ${value}`);
  return value;
}

/** Engine block hashes may be sent as signed i64: the 64 bits are reinterpreted as unsigned. */
function asBlockHash(value: unknown, path: string): bigint {
  if (typeof value !== "bigint") fail(path, "expected a 64-bit integer block hash");
  if (value < I64_MIN || value > U64_MAX) fail(path, `out of the 64-bit range: ${value}`);
  return BigInt.asUintN(64, value);
}

function asU32(value: unknown, path: string): number {
  if (typeof value !== "bigint" || value < 0n || value > 0xffffffffn) fail(path, "expected an unsigned 32-bit integer");
  return Number(value);
}

function asArray(value: unknown, path: string): unknown[] {
  if (!Array.isArray(value)) fail(path, "expected an array");
  return value;
}

function decodeData(value: unknown, path: string): KvCacheEventData {
  if (value === "cleared") return { type: "cleared" };
  const obj = asObject(value, path);
  const keys = Object.keys(obj);
  if (keys.length !== 1)
    fail(path, `expected exactly one of "stored", "removed" or "cleared", got ${JSON.stringify(keys)}`);
  if ("stored" in obj) {
    const stored = asObject(obj["stored"], `${path}.stored`);
    const parent = stored["parent_hash"];
    const blocks = asArray(stored["blocks"], `${path}.stored.blocks`);
    const blockHashes = new BigUint64Array(blocks.length);
    const tokensHashes = new BigUint64Array(blocks.length);
    blocks.forEach((block, i) => {
      const b = asObject(block, `${path}.stored.blocks[${i}]`);
      blockHashes[i] = asBlockHash(b["block_hash"], `${path}.stored.blocks[${i}].block_hash`);
      tokensHashes[i] = asU64(b["tokens_hash"], `${path}.stored.blocks[${i}].tokens_hash`);
    });
    const start = stored["start_position"];
    return {
      type: "stored",
      parentHash: parent === null || parent === undefined ? null : asBlockHash(parent, `${path}.stored.parent_hash`),
      startPosition: start === null || start === undefined ? null : asU32(start, `${path}.stored.start_position`),
      blockHashes,
      tokensHashes,
    };
  }
  if ("removed" in obj) {
    const removed = asObject(obj["removed"], `${path}.removed`);
    const hashes = asArray(removed["block_hashes"], `${path}.removed.block_hashes`);
    return {
      type: "removed",
      blockHashes: BigUint64Array.from(hashes, (h, i) => asBlockHash(h, `${path}.removed.block_hashes[${i}]`)),
    };
  }
  if ("cleared" in obj) return { type: "cleared" };
  fail(path, `unknown event kind ${JSON.stringify(keys[0])}`);
}

/** Decodes an already parsed (lossless) JSON value into a `RouterEvent`. */
export function routerEventFromJsonValue(value: unknown): RouterEvent {
  const root = asObject(value, "$");
  const event = asObject(root["event"], "$.event");
  const tier = root["storage_tier"] ?? "device";
  if (typeof tier !== "string" || !STORAGE_TIERS.includes(tier as StorageTier)) {
    fail("$.storage_tier", `expected one of ${STORAGE_TIERS.join(", ")}`);
  }
  return {
    workerId: asU64(root["worker_id"], "$.worker_id"),
    dpRank: event["dp_rank"] === undefined ? 0 : asU32(event["dp_rank"], "$.event.dp_rank"),
    eventId: asU64(event["event_id"], "$.event.event_id"),
    storageTier: tier as StorageTier,
    data: decodeData(event["data"], "$.event.data"),
  };
}

/** Parses one router event from JSON text; throws `RouterEventDecodeError` naming the bad field. */
export function decodeRouterEventJson(text: string): RouterEvent {
  let value: unknown;
  try {
    value = parseLosslessJson(text);
  } catch (err) {
    throw new RouterEventDecodeError(`malformed JSON: ${(err as Error).message}`);
  }
  return routerEventFromJsonValue(value);
}

/** The serde-shaped plain value of an event (bigints kept), ready for `stringifyLosslessJson`. */
export function routerEventToJsonValue(event: RouterEvent): Record<string, unknown> {
  const d = event.data;
  let data: unknown;
  if (d.type === "cleared") data = "cleared";
  else if (d.type === "removed") data = { removed: { block_hashes: Array.from(d.blockHashes) } };
  else {
    data = {
      stored: {
        parent_hash: d.parentHash,
        start_position: d.startPosition ?? null,
        blocks: Array.from(d.blockHashes, (blockHash, i) => ({
          block_hash: blockHash,
          tokens_hash: d.tokensHashes[i]!,
          mm_extra_info: null,
        })),
      },
    };
  }
  return {
    worker_id: event.workerId,
    storage_tier: event.storageTier,
    event: { event_id: event.eventId, dp_rank: event.dpRank, data },
  };
}

/** Serialises one router event to JSON text (64-bit values as bare integers). */
export function encodeRouterEventJson(event: RouterEvent): string {
  return stringifyLosslessJson(routerEventToJsonValue(event));
}
