import type { WireMetadata } from "./messages.js";
import { structToJson, type JsonObject, type JsonValue } from "./struct.js";

/** Dynamic-metadata namespace of the load-balancing keys (destination and served endpoint). */
export const LB_NAMESPACE = "envoy.lb";
/** Metadata namespace of the subset hint the data plane sends (GAIE 004). */
export const SUBSET_HINT_NAMESPACE = "envoy.lb.subset_hint";
/** Header and `envoy.lb` key naming the endpoint(s) chosen by the picker. */
export const DESTINATION_ENDPOINT_KEY = "x-gateway-destination-endpoint";
/** Key of the subset hint inside `envoy.lb.subset_hint`. */
export const SUBSET_HINT_KEY = "x-gateway-destination-endpoint-subset";
/** `envoy.lb` key in which the data plane reports the endpoint that actually served the request. */
export const SERVED_ENDPOINT_KEY = "x-gateway-destination-endpoint-served";

/** `metadata_context.filter_metadata` as plain objects, by namespace. */
export type FilterMetadata = Readonly<Record<string, JsonObject>>;

/** Reads `metadata_context.filter_metadata` into plain objects. */
export function filterMetadataOf(metadata: WireMetadata | undefined): FilterMetadata {
  const out: Record<string, JsonObject> = {};
  for (const [namespace, struct] of Object.entries(metadata?.filter_metadata ?? {})) {
    out[namespace] = structToJson(struct);
  }
  return out;
}

/** Host and optional port of an endpoint string (`ip`, `ip:port`, `[v6]`, `[v6]:port`, bare v6). */
export interface HostPort {
  /** Lower-case host without IPv6 brackets. */
  host: string;
  port?: number;
}

/** Splits an endpoint string; undefined when it is blank or malformed. */
export function parseHostPort(text: string): HostPort | undefined {
  const value = text.trim();
  if (value === "") return undefined;
  if (value.startsWith("[")) {
    const close = value.indexOf("]");
    if (close < 0) return undefined;
    const host = value.slice(1, close).toLowerCase();
    const rest = value.slice(close + 1);
    if (host === "") return undefined;
    if (rest === "") return { host };
    if (!rest.startsWith(":")) return undefined;
    const port = parsePort(rest.slice(1));
    return port === undefined ? undefined : { host, port };
  }
  const colons = value.split(":").length - 1;
  if (colons === 0) return { host: value.toLowerCase() };
  if (colons > 1) return { host: value.toLowerCase() }; // bare IPv6 address without a port
  const [host, portText] = value.split(":") as [string, string];
  const port = parsePort(portText);
  if (host === "" || port === undefined) return undefined;
  return { host: host.toLowerCase(), port };
}

function parsePort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port > 0 && port < 65536 ? port : undefined;
}

/** Formats host and port as an endpoint string, bracketing IPv6 hosts. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * A set of endpoints a request may go to (the gateway's subset hint, possibly narrowed by the
 * conformance selection header). An endpoint is allowed when its full `ip:port` equals an entry or its
 * IP equals an entry's IP (GAIE matches on IP), bracketed IPv6 accepted. An empty subset allows nothing.
 */
export class EndpointSubset {
  private readonly hosts: ReadonlySet<string>;

  private constructor(
    /** The entries as received, trimmed, blanks dropped. */
    readonly entries: readonly string[],
    private readonly also: EndpointSubset | undefined,
  ) {
    const hosts = new Set<string>();
    for (const entry of entries) {
      const parsed = parseHostPort(entry);
      if (parsed) hosts.add(parsed.host);
    }
    this.hosts = hosts;
  }

  static of(entries: Iterable<string>): EndpointSubset {
    return new EndpointSubset(
      [...entries].map((e) => e.trim()).filter((e) => e !== ""),
      undefined,
    );
  }

  /** Whether `endpoint` (`ip:port`) is inside the subset. */
  allows(endpoint: string): boolean {
    if (!this.ownAllows(endpoint)) return false;
    return this.also === undefined || this.also.allows(endpoint);
  }

  /** True when no endpoint can match (no entry parses as an endpoint). */
  get isEmpty(): boolean {
    return this.hosts.size === 0 || (this.also?.isEmpty ?? false);
  }

  /** The intersection of this subset and `other`. */
  and(other: EndpointSubset): EndpointSubset {
    return new EndpointSubset(this.entries, this.also ? this.also.and(other) : other);
  }

  private ownAllows(endpoint: string): boolean {
    const trimmed = endpoint.trim();
    if (this.entries.includes(trimmed)) return true;
    const parsed = parseHostPort(trimmed);
    return parsed !== undefined && this.hosts.has(parsed.host);
  }
}

/**
 * The subset hint in `envoy.lb.subset_hint` / `x-gateway-destination-endpoint-subset`: a list of
 * `ip:port` strings or one comma-separated string. Undefined when absent or an empty string (no
 * subset); an empty list yields an empty subset (nothing eligible).
 */
export function subsetHintOf(metadata: FilterMetadata): EndpointSubset | undefined {
  const value = metadata[SUBSET_HINT_NAMESPACE]?.[SUBSET_HINT_KEY];
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string") {
    if (value.trim() === "") return undefined;
    return EndpointSubset.of(value.split(","));
  }
  if (Array.isArray(value)) return EndpointSubset.of(value.filter((v): v is string => typeof v === "string"));
  return EndpointSubset.of([]);
}

/**
 * The endpoint the data plane reports as having served the request (`envoy.lb` /
 * `x-gateway-destination-endpoint-served`): from a string, the last entry of a comma-separated list;
 * from a list, the last non-blank string. Blank reads as absent.
 */
export function servedEndpointOf(metadata: FilterMetadata): string | undefined {
  const value: JsonValue | undefined = metadata[LB_NAMESPACE]?.[SERVED_ENDPOINT_KEY];
  const candidates = typeof value === "string" ? value.split(",") : Array.isArray(value) ? value : [];
  for (let i = candidates.length - 1; i >= 0; i--) {
    const candidate = candidates[i];
    if (typeof candidate === "string" && candidate.trim() !== "") return candidate.trim();
  }
  return undefined;
}
