import type { IncomingHttpHeaders } from "node:http";
import type { RoutingFields } from "./types.js";

const U32_MAX = 0xffff_ffff;
const U64_MAX = (1n << 64n) - 1n;
const I32_MIN = -(2 ** 31);
const I32_MAX = 2 ** 31 - 1;

/** Header carrying the prefill pod's `host:port` for a disaggregated request (set by the endpoint picker). */
export const PREFILLER_HOST_PORT_HEADER = "x-prefiller-host-port";
/** Aggregated or disaggregated, as the endpoint picker decided (read by this project only). */
export const ROUTING_MODE_HEADER = "x-dynamo-routing-mode";

/** Canonical name first, then the deprecated aliases, read only when every earlier name is absent. */
const WORKER_ID = ["x-dynamo-worker-instance-id", "x-worker-instance-id"] as const;
const PREFILL_ID = ["x-dynamo-prefill-instance-id", "x-prefill-instance-id"] as const;
const DP_RANK = ["x-dynamo-dp-rank", "x-dp-rank", "x-data-parallel-rank"] as const;
const PREFILL_DP_RANK = ["x-dynamo-prefill-dp-rank", "x-prefill-dp-rank"] as const;
const PRIORITY = "x-dynamo-request-priority";
const STRICT_PRIORITY = "x-dynamo-request-strict-priority";
const TENANT = "x-tenant-id";

/**
 * Every header that steers routing: never forwarded to an engine (the prefill target gets its own, set
 * by this sidecar). `x-tenant-id` and the priority headers are consumed here as well.
 */
export const ROUTING_HEADERS: ReadonlySet<string> = new Set<string>([
  ...WORKER_ID,
  ...PREFILL_ID,
  ...DP_RANK,
  ...PREFILL_DP_RANK,
  PRIORITY,
  STRICT_PRIORITY,
  TENANT,
  ROUTING_MODE_HEADER,
  PREFILLER_HOST_PORT_HEADER,
  "x-data-parallel-host-port",
  "x-enable-local-updates",
]);

/** The value of a header as one string: a repeated header is joined with ", " (Node's form for unknown names). */
function single(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(", ") : value;
}

/** The first of `names` present, canonical before aliases. */
function firstPresent(headers: IncomingHttpHeaders, names: readonly string[]): string | undefined {
  for (const name of names) {
    const value = single(headers, name);
    if (value !== undefined) return value;
  }
  return undefined;
}

/** A decimal u64, or undefined when the text is not one. */
export function parseU64(text: string): bigint | undefined {
  const trimmed = text.trim();
  if (!/^\d{1,20}$/.test(trimmed)) return undefined;
  const value = BigInt(trimmed);
  return value <= U64_MAX ? value : undefined;
}

function parseIntIn(text: string, min: number, max: number): number | undefined {
  const trimmed = text.trim();
  if (!/^-?\d{1,10}$/.test(trimmed)) return undefined;
  const value = Number(trimmed);
  return value >= min && value <= max ? value : undefined;
}

/** A decimal u32 (`u32::MAX` included: for the prefill DP rank it means "unset"). */
export function parseU32(text: string): number | undefined {
  return parseIntIn(text, 0, U32_MAX);
}

/** Worker id from a body field: a JSON integer (its exact digits taken from the raw text when past 2^53) or a decimal string. */
function bodyU64(value: unknown, exactDigits: string | undefined): bigint | undefined {
  if (typeof value === "string") return parseU64(value);
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) return undefined;
  if (Number.isSafeInteger(value)) return BigInt(value);
  return exactDigits === undefined ? undefined : parseU64(exactDigits);
}

function bodyU32(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isInteger(value) && value >= 0 && value <= U32_MAX ? value : undefined;
  return typeof value === "string" ? parseU32(value) : undefined;
}

/**
 * The exact digits of an integer member `name` in JSON text (JSON numbers past 2^53 lose digits when
 * parsed). Only the first occurrence is read: the body's `nvext` members are the only ones named so.
 */
export function rawIntegerMember(text: string, name: string): string | undefined {
  const match = new RegExp(`"${name}"\\s*:\\s*(\\d+)`).exec(text);
  return match?.[1];
}

/**
 * The routing fields of a request (reference §2): the body's `nvext` first, then each header row
 * overriding its field(s), canonical `x-dynamo-*` name before the deprecated aliases. Unparsable values
 * are ignored (the field stays as the body had it). `x-prefill-dp-rank` of `u32::MAX` means unset.
 */
export function routingFields(
  headers: IncomingHttpHeaders,
  nvext?: Record<string, unknown>,
  rawBody = "",
): RoutingFields {
  const fields: RoutingFields = {};
  if (nvext !== undefined) {
    const backend = bodyU64(nvext["backend_instance_id"], rawIntegerMember(rawBody, "backend_instance_id"));
    const decode = bodyU64(nvext["decode_worker_id"], rawIntegerMember(rawBody, "decode_worker_id"));
    const prefill = bodyU64(nvext["prefill_worker_id"], rawIntegerMember(rawBody, "prefill_worker_id"));
    const dpRank = bodyU32(nvext["dp_rank"]);
    const prefillDpRank = bodyU32(nvext["prefill_dp_rank"]);
    if (backend !== undefined) fields.backendInstanceId = backend;
    if (decode !== undefined) fields.decodeWorkerId = decode;
    if (prefill !== undefined) fields.prefillWorkerId = prefill;
    if (dpRank !== undefined) fields.dpRank = dpRank;
    if (prefillDpRank !== undefined && prefillDpRank !== U32_MAX) fields.prefillDpRank = prefillDpRank;
  }

  const worker = firstPresent(headers, WORKER_ID);
  const workerId = worker === undefined ? undefined : parseU64(worker);
  if (workerId !== undefined) {
    fields.backendInstanceId = workerId;
    fields.decodeWorkerId = workerId;
  }
  const prefill = firstPresent(headers, PREFILL_ID);
  const prefillId = prefill === undefined ? undefined : parseU64(prefill);
  if (prefillId !== undefined) fields.prefillWorkerId = prefillId;
  const dp = firstPresent(headers, DP_RANK);
  const dpRank = dp === undefined ? undefined : parseU32(dp);
  if (dpRank !== undefined && dpRank !== U32_MAX) fields.dpRank = dpRank;
  const prefillDp = firstPresent(headers, PREFILL_DP_RANK);
  const prefillDpRank = prefillDp === undefined ? undefined : parseU32(prefillDp);
  if (prefillDpRank === U32_MAX) delete fields.prefillDpRank;
  else if (prefillDpRank !== undefined) fields.prefillDpRank = prefillDpRank;

  const priority = single(headers, PRIORITY);
  const priorityValue = priority === undefined ? undefined : parseIntIn(priority, I32_MIN, I32_MAX);
  if (priorityValue !== undefined) fields.priority = priorityValue;
  const strict = single(headers, STRICT_PRIORITY);
  const strictValue = strict === undefined ? undefined : parseU32(strict);
  if (strictValue !== undefined) fields.strictPriority = strictValue;
  const tenant = single(headers, TENANT)?.trim();
  if (tenant !== undefined && tenant !== "") {
    fields.cacheSalt = tenant;
    fields.trustedTenantId = tenant;
  }
  return fields;
}

/** Headers for an engine: everything the client sent except hop-by-hop, length and routing headers. */
export function engineHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || ROUTING_HEADERS.has(name) || HOP_BY_HOP.has(name)) continue;
    out[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "host",
  "content-length",
  "accept-encoding",
  "expect",
]);
