import type { RouteRequest } from "@dynamo/kv-router";
import { InvalidRequestError } from "./errors.js";

/** What a caller asks the service to route. */
export interface ServiceRequest {
  /**
   * The OpenAI request body (chat completions with `messages`, or completions with `prompt`): parsed
   * JSON, or its raw bytes or text. Tokenized with the model's own tokenizer and chat template.
   */
  readonly body?: unknown;
  /**
   * The body already parsed (e.g. by the caller that checked it is JSON), when `body` is its raw text or
   * bytes: routing hints and the request kind are read from it, so the text is not parsed twice on the
   * caller's thread. The raw text still goes to the tokenizer.
   */
  readonly parsedBody?: unknown;
  /** `chat` or `completions`; inferred from the body (`messages` or `prompt`) when absent. */
  readonly kind?: "chat" | "completions";
  /** Prompt token ids, instead of a body: routed as they are (no tokenizer involved). */
  readonly tokens?: ArrayLike<number>;
  /** Model name; default the body's `model`. Selects the tokenizer. */
  readonly model?: string;
  /** Booking id (e.g. the EPP's per-stream UUID); generated when absent. */
  readonly requestId?: string;
  /**
   * Subset hint: the worker addresses (`ip:port`, or a bare IP matching every port) the request may go
   * to. An empty list matches nothing.
   */
  readonly allowedEndpoints?: readonly string[];
  /** Only these worker ids may be chosen (combined with `allowedEndpoints` when both are given). */
  readonly allowedWorkers?: Iterable<bigint>;
  /** Route to this worker (rank) without scoring; still checked against busy thresholds. */
  readonly pinned?: RouteRequest["pinned"];
  readonly pinnedPrefill?: RouteRequest["pinnedPrefill"];
  /** Sticky sessions (`DYN_ROUTER_SESSION_AFFINITY_TTL_SECS`). */
  readonly sessionId?: string;
  /** LoRA adapter name: salts the block hashes. */
  readonly loraName?: string;
  /** Cache namespace; default the body's `nvext.cache_salt`, then its `cache_salt`. */
  readonly cacheSalt?: string;
  /** Default the body's `nvext.agent_hints.priority`. */
  readonly priority?: number;
  /** Expected output length; default the body's `nvext.agent_hints.osl`. */
  readonly expectedOutputTokens?: number;
  readonly overrides?: RouteRequest["overrides"];
  /** Evaluate only: nothing is booked. */
  readonly queryOnly?: boolean;
}

/** The raw JSON text of a body given as bytes or text; undefined for a body given parsed. */
export function bodyText(body: unknown): string | undefined {
  if (typeof body === "string") return body;
  if (body instanceof Uint8Array) return new TextDecoder("utf-8", { fatal: false }).decode(body);
  return undefined;
}

/** The body as a JSON value (parsing bytes or text). */
export function parseBody(body: unknown): unknown {
  if (!(body instanceof Uint8Array) && typeof body !== "string") return body;
  const text = typeof body === "string" ? body : new TextDecoder("utf-8", { fatal: false }).decode(body);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new InvalidRequestError(`body: not valid JSON: ${(error as Error).message}`);
  }
}

/** `chat` or `completions` for a parsed body. */
export function requestKind(body: unknown, given: ServiceRequest["kind"]): "chat" | "completions" {
  if (given !== undefined) return given;
  if (typeof body === "object" && body !== null && !Array.isArray(body)) {
    if ("messages" in body) return "chat";
    if ("prompt" in body) return "completions";
  }
  throw new InvalidRequestError("body: expected an object with `messages` (chat) or `prompt` (completions)");
}

function objectField(value: unknown, key: string): Record<string, unknown> | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const field = (value as Record<string, unknown>)[key];
  return typeof field === "object" && field !== null && !Array.isArray(field)
    ? (field as Record<string, unknown>)
    : undefined;
}

function stringField(value: Record<string, unknown> | undefined, key: string): string | undefined {
  const field = value?.[key];
  return typeof field === "string" && field.trim() !== "" ? field : undefined;
}

function numberField(value: Record<string, unknown> | undefined, key: string): number | undefined {
  const field = value?.[key];
  if (field === undefined || field === null) return undefined;
  if (typeof field !== "number" || !Number.isFinite(field))
    throw new InvalidRequestError(`nvext.agent_hints.${key}: expected a number, got ${JSON.stringify(field)}`);
  return field;
}

/** Routing fields a body carries. */
export interface BodyHints {
  readonly model?: string;
  readonly cacheSalt?: string;
  readonly priority?: number;
  readonly expectedOutputTokens?: number;
}

/** The routing fields of a parsed body: model, cache namespace, priority and expected output length. */
export function bodyHints(body: unknown): BodyHints {
  const root = typeof body === "object" && body !== null ? (body as Record<string, unknown>) : undefined;
  const nvext = objectField(body, "nvext");
  const hints = objectField(nvext, "agent_hints");
  const priority = numberField(hints, "priority");
  const osl = numberField(hints, "osl");
  return {
    model: stringField(root, "model"),
    cacheSalt: stringField(nvext, "cache_salt") ?? stringField(root, "cache_salt"),
    priority: priority === undefined ? undefined : Math.max(0, priority),
    expectedOutputTokens: osl,
  };
}

/**
 * Whether a worker address matches a subset-hint entry: the same `host:port`, or the same host (the
 * gateway's hint names pods by IP; bracketed IPv6 accepted).
 */
export function endpointMatches(endpoint: string, entry: string): boolean {
  const want = entry.trim();
  return want !== "" && (endpoint === want || hostOf(endpoint) === hostOf(want));
}

function hasPort(address: string): boolean {
  if (address.startsWith("[")) return /\]:\d+$/.test(address);
  return /^[^:]+:\d+$/.test(address);
}

function hostOf(address: string): string {
  if (address.startsWith("[")) return address.slice(1, address.indexOf("]"));
  return hasPort(address) ? address.slice(0, address.lastIndexOf(":")) : address;
}
