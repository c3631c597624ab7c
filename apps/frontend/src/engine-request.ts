import type { RequestKind } from "./types.js";

export type JsonObject = Record<string, unknown>;

/** What the engine is asked: the path, the body, and whether a chat request became a completion. */
export interface EngineRequest {
  readonly path: "/v1/chat/completions" | "/v1/completions";
  readonly body: JsonObject;
  /** A chat request sent as a completion on its rendered tokens: the response must be mapped back to chat shape. */
  readonly chatAsCompletion: boolean;
}

/** Chat-only fields a completion request does not take (the rendered tokens already hold the conversation). */
const CHAT_ONLY = [
  "messages",
  "tools",
  "tool_choice",
  "parallel_tool_calls",
  "functions",
  "function_call",
  "chat_template",
  "chat_template_kwargs",
  "add_generation_prompt",
  "continue_final_message",
  "documents",
  "echo",
  "logprobs",
  "top_logprobs",
  "max_completion_tokens",
  "reasoning_effort",
  "include_reasoning",
  "modalities",
  "audio",
  "prediction",
  "web_search_options",
  "store",
  "metadata",
  "mm_processor_kwargs",
] as const;

/** Whether a chat request declares tools (then it stays a chat request: the engine parses tool calls). */
export function hasTools(body: JsonObject): boolean {
  const tools = body["tools"];
  return (Array.isArray(tools) && tools.length > 0) || Array.isArray(body["functions"]);
}

/**
 * The engine request for a client request (reference §3): with prompt token ids (the endpoint picker's
 * `nvext.token_data`, or this sidecar's own tokenization) a completion request gets them as its
 * `prompt`, and a chat request without tools becomes a completion on them (sampling fields kept,
 * `max_completion_tokens` → `max_tokens`, `logprobs`/`top_logprobs` → completion `logprobs`). A chat
 * request with tools stays chat, with the ids in `nvext.token_data` for engines that take them.
 * `nvext` never reaches an engine otherwise; a tenant's `cache_salt` does.
 */
export function engineRequest(
  kind: RequestKind,
  body: JsonObject,
  tokenIds: readonly number[] | undefined,
  cacheSalt?: string,
): EngineRequest {
  const out: JsonObject = { ...body };
  delete out["nvext"];
  if (cacheSalt !== undefined) out["cache_salt"] = cacheSalt;
  if (kind === "completions") {
    if (tokenIds !== undefined) out["prompt"] = tokenIds;
    return { path: "/v1/completions", body: out, chatAsCompletion: false };
  }
  if (tokenIds === undefined || hasTools(body)) {
    if (tokenIds !== undefined) out["nvext"] = { token_data: tokenIds };
    return { path: "/v1/chat/completions", body: out, chatAsCompletion: false };
  }
  for (const name of CHAT_ONLY) delete out[name];
  out["prompt"] = tokenIds;
  const maxTokens = body["max_completion_tokens"] ?? body["max_tokens"];
  if (maxTokens !== undefined && maxTokens !== null) out["max_tokens"] = maxTokens;
  if (body["logprobs"] === true) {
    const top = body["top_logprobs"];
    out["logprobs"] = typeof top === "number" ? top : 0;
  }
  return { path: "/v1/completions", body: out, chatAsCompletion: true };
}

/** The `kv_transfer_params` of a prefill request for vLLM's NixlConnector (reference §7.2). */
export const PREFILL_KV_TRANSFER_PARAMS = Object.freeze({
  do_remote_decode: true,
  do_remote_prefill: false,
  remote_engine_id: null,
  remote_block_ids: null,
  remote_host: null,
  remote_port: null,
});

/** The prefill leg: the same request capped at one token, not streamed, asking to keep its KV for a remote decode. */
export function prefillBody(body: JsonObject): JsonObject {
  const out: JsonObject = { ...body, stream: false, max_tokens: 1 };
  if ("max_completion_tokens" in out) out["max_completion_tokens"] = 1;
  delete out["stream_options"];
  delete out["min_tokens"];
  out["kv_transfer_params"] = { ...PREFILL_KV_TRANSFER_PARAMS };
  return out;
}

/** The decode leg: the original request (stream and token limits as the client sent) with the prefill's `kv_transfer_params`. */
export function decodeBody(body: JsonObject, kvTransferParams: JsonObject): JsonObject {
  return { ...body, kv_transfer_params: kvTransferParams };
}
