import { randomUUID } from "node:crypto";
import type { OutgoingHttpHeaders } from "node:http";
import { readText, type EngineClient } from "./engine-client.js";
import { prefillBody, type EngineRequest, type JsonObject } from "./engine-request.js";
import type { Route } from "./types.js";

/** What the prefill leg came back with. */
export type PrefillOutcome =
  /** KV kept for this decode: decode locally with these params; `cachedTokens` as the prefill worker counted. */
  | { readonly kind: "transfer"; readonly kvTransferParams: JsonObject; readonly cachedTokens: number | undefined }
  /** The request finished in prefill (EOS on the first token, or a one-token request): its output is the answer. */
  | { readonly kind: "finished"; readonly response: JsonObject }
  /** A 4xx from the prefill worker: the client's request is wrong, relayed as is. */
  | { readonly kind: "rejected"; readonly status: number; readonly contentType: string; readonly body: string }
  /** Anything else (unreachable, 5xx, a response without transfer params): fallback or 503 by policy. */
  | { readonly kind: "failed"; readonly reason: string };

const MAX_PREFILL_RESPONSE_BYTES = 16 * 2 ** 20;

function firstChoice(response: JsonObject): JsonObject | undefined {
  const choices = response["choices"];
  const first: unknown = Array.isArray(choices) ? choices[0] : undefined;
  return first !== null && typeof first === "object" ? (first as JsonObject) : undefined;
}

/** `usage.prompt_tokens_details.cached_tokens` of a response, when it is a number. */
export function cachedTokensOf(response: JsonObject): number | undefined {
  const usage = response["usage"] as { prompt_tokens_details?: { cached_tokens?: unknown } | null } | undefined;
  const cached = usage?.prompt_tokens_details?.cached_tokens;
  return typeof cached === "number" ? cached : undefined;
}

/**
 * Classifies a prefill response (reference §5, §7.3, §7.4): 4xx relayed; other non-200 statuses, bodies
 * that are not JSON objects and a length-capped answer without `kv_transfer_params` failed; a stop (EOS
 * on the first token), or the length cap when the client itself asked for one token, finished.
 */
export function classifyPrefill(
  status: number,
  contentType: string,
  text: string,
  clientMaxTokens: unknown,
): PrefillOutcome {
  if (status >= 400 && status < 500) return { kind: "rejected", status, contentType, body: text };
  if (status !== 200) return { kind: "failed", reason: `status ${status}: ${text.slice(0, 200)}` };
  let response: unknown;
  try {
    response = JSON.parse(text);
  } catch {
    return { kind: "failed", reason: "the response is not JSON" };
  }
  if (response === null || typeof response !== "object" || Array.isArray(response))
    return { kind: "failed", reason: "the response is not a JSON object" };
  const body = response as JsonObject;
  const finish = firstChoice(body)?.["finish_reason"];
  if (finish === "stop" || (finish === "length" && clientMaxTokens === 1)) return { kind: "finished", response: body };
  const params = body["kv_transfer_params"];
  if (params === null || typeof params !== "object" || Array.isArray(params))
    return { kind: "failed", reason: "the response carries no kv_transfer_params (is a KV connector configured?)" };
  return { kind: "transfer", kvTransferParams: params as JsonObject, cachedTokens: cachedTokensOf(body) };
}

/**
 * Runs the prefill leg (reference §7.2) on the prefill pod's `http` endpoint: the engine request capped
 * at one token, not streamed, with `do_remote_decode`, a fresh `x-request-id`, and the prefill worker's
 * id and DP rank as routing headers (the prefill pod's sidecar checks them; an engine ignores them).
 */
export async function runPrefill(
  client: EngineClient,
  route: Required<Route>["prefill"],
  request: EngineRequest,
  headers: OutgoingHttpHeaders,
  clientMaxTokens: unknown,
  signal: AbortSignal,
): Promise<PrefillOutcome> {
  const url = new URL(`http://${route.hostPort}${request.path}`);
  const prefillHeaders: OutgoingHttpHeaders = {
    ...headers,
    "content-type": "application/json",
    "x-request-id": randomUUID(),
    "x-dynamo-routing-mode": "aggregated",
  };
  if (route.workerId !== undefined) prefillHeaders["x-dynamo-worker-instance-id"] = route.workerId.toString();
  if (route.dpRank !== undefined) prefillHeaders["x-dynamo-dp-rank"] = String(route.dpRank);
  try {
    const response = await client.send(url, "POST", prefillHeaders, JSON.stringify(prefillBody(request.body)), signal);
    const text = await readText(response, MAX_PREFILL_RESPONSE_BYTES);
    return classifyPrefill(response.statusCode ?? 502, response.headers["content-type"] ?? "", text, clientMaxTokens);
  } catch (error) {
    if (signal.aborted) throw error;
    return { kind: "failed", reason: (error as Error).message };
  }
}
