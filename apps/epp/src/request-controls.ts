import { reject, type HeaderList, type RouteRejected } from "@dynamo/ext-proc";

/** At most this many `x-dynamo-meta-*` headers per request (431 beyond). */
export const MAX_METADATA_ENTRIES = 64;
/** At most this many bytes of `x-dynamo-meta-*` names and values per request (431 beyond). */
export const MAX_METADATA_BYTES = 64 * 1024;
/** Largest `slo-ttft-ms` metadata value accepted (one hour). */
export const MAX_SLO_TTFT_MS = 3_600_000;

/** What a request's headers and path ask of routing (epp-protocol §5.2). */
export interface RequestControls {
  /** `chat` or `completions` from the path; undefined leaves it to the body. */
  readonly kind: "chat" | "completions" | undefined;
  /** `x-tenant-id`: the cache namespace (wins over `nvext.cache_salt` and `cache_salt`). */
  readonly cacheSalt: string | undefined;
  /** `x-dynamo-request-priority` (wins over `nvext.agent_hints.priority`); negative reads as 0. */
  readonly priority: number | undefined;
  /** `x-dynamo-request-strict-priority`. */
  readonly strictPriority: boolean | undefined;
  /** `x-dynamo-meta-*` headers (prefix configurable), name minus prefix → trimmed value, first wins. */
  readonly metadata: Readonly<Record<string, string>>;
  /** `x-gateway-inference-objective` (GAIE). */
  readonly objective: string | undefined;
}

/** The request kind a path names (`/v1/chat/completions`, `/v1/completions`), query ignored. */
export function kindOfPath(path: string): "chat" | "completions" | undefined {
  const bare = path.split("?", 1)[0]!.replace(/\/+$/, "");
  if (bare.endsWith("/chat/completions")) return "chat";
  if (bare.endsWith("/completions")) return "completions";
  return undefined;
}

function lastNonEmpty(headers: HeaderList, name: string): string | undefined {
  const values = headers
    .getAll(name)
    .map((v) => v.trim())
    .filter((v) => v !== "");
  return values.at(-1);
}

const TRUE = new Set(["true", "1", "yes", "on"]);
const FALSE = new Set(["false", "0", "no", "off"]);

/**
 * Reads the routing controls of a request, or the rejection its headers earn: too many or too large
 * metadata headers (431), a priority or `slo-ttft-ms` that is not a number in range (400).
 */
export function readControls(
  headers: HeaderList,
  path: string,
  metadataPrefix: string,
): RequestControls | RouteRejected {
  const prefix = metadataPrefix.toLowerCase();
  const metadata: Record<string, string> = {};
  let entries = 0;
  let bytes = 0;
  for (const [name, value] of headers) {
    if (!name.startsWith(prefix)) continue;
    entries++;
    bytes += name.length + value.length;
    if (entries > MAX_METADATA_ENTRIES || bytes > MAX_METADATA_BYTES) {
      return reject(
        "metadata_too_large",
        `too many or too large ${prefix}* headers: at most ${MAX_METADATA_ENTRIES} headers and ${MAX_METADATA_BYTES} bytes`,
      );
    }
    const key = name.slice(prefix.length);
    if (key !== "" && !(key in metadata)) metadata[key] = value.trim();
  }
  const slo = metadata["slo-ttft-ms"];
  if (slo !== undefined) {
    const ms = Number(slo);
    if (!Number.isInteger(ms) || ms < 1 || ms > MAX_SLO_TTFT_MS)
      return reject(
        "invalid_request",
        `${prefix}slo-ttft-ms: expected an integer from 1 to ${MAX_SLO_TTFT_MS} (milliseconds), got "${slo}"`,
      );
  }
  let priority: number | undefined;
  const priorityText = lastNonEmpty(headers, "x-dynamo-request-priority");
  if (priorityText !== undefined) {
    priority = Number(priorityText);
    if (!Number.isFinite(priority))
      return reject("invalid_request", `x-dynamo-request-priority: expected a number, got "${priorityText}"`);
    priority = Math.max(0, priority);
  }
  let strictPriority: boolean | undefined;
  const strictText = lastNonEmpty(headers, "x-dynamo-request-strict-priority")?.toLowerCase();
  if (strictText !== undefined) {
    if (!TRUE.has(strictText) && !FALSE.has(strictText))
      return reject("invalid_request", `x-dynamo-request-strict-priority: expected true or false, got "${strictText}"`);
    strictPriority = TRUE.has(strictText);
  }
  return {
    kind: kindOfPath(path),
    cacheSalt: lastNonEmpty(headers, "x-tenant-id"),
    priority,
    strictPriority,
    metadata,
    objective: lastNonEmpty(headers, "x-gateway-inference-objective"),
  };
}
