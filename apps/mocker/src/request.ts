import { HttpError } from "./errors.js";

export type RequestKind = "chat" | "completions";

/** The fields of an OpenAI request the mocker acts on (the prompt itself is left to the tokenizer). */
export interface GenerationRequest {
  readonly kind: RequestKind;
  readonly model: string;
  readonly stream: boolean;
  readonly includeUsage: boolean;
  /** `max_tokens` / `max_completion_tokens`, if given. */
  readonly maxTokens: number | undefined;
  /** `nvext.token_data`: the prompt ids, used instead of tokenizing. */
  readonly tokenData: Uint32Array | undefined;
  /** The prompt is a list of token ids (completions). */
  readonly promptIsTokens: boolean;
  readonly kvTransferParams: Readonly<Record<string, unknown>> | undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function optionalBoolean(body: Record<string, unknown>, field: string): boolean | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "boolean") throw new HttpError(400, `${field} must be a boolean`, field);
  return value;
}

function optionalCount(body: Record<string, unknown>, field: string): number | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1)
    throw new HttpError(400, `${field} must be a positive integer, got ${JSON.stringify(value)}`, field);
  return value;
}

function tokenIds(value: unknown, field: string): Uint32Array {
  if (!Array.isArray(value) || value.length === 0)
    throw new HttpError(400, `${field} must be a non-empty array of token ids`, field);
  const ids = new Uint32Array(value.length);
  for (let i = 0; i < value.length; i++) {
    const id: unknown = value[i];
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > 0xffff_ffff)
      throw new HttpError(400, `${field}[${i}] must be a token id (an integer ≥ 0), got ${JSON.stringify(id)}`, field);
    ids[i] = id;
  }
  return ids;
}

/** Reads and checks the fields of a chat or completions body; throws `HttpError` 400 naming the field. */
export function parseGenerationRequest(kind: RequestKind, body: unknown): GenerationRequest {
  if (!isRecord(body)) throw new HttpError(400, "the request body must be a JSON object");
  const model = body["model"];
  if (typeof model !== "string" || model === "") throw new HttpError(400, "model must be a non-empty string", "model");
  if (kind === "chat" && !Array.isArray(body["messages"]))
    throw new HttpError(400, "messages must be an array of chat messages", "messages");
  const prompt = body["prompt"];
  if (kind === "completions") {
    if (prompt === undefined || prompt === null) throw new HttpError(400, "prompt is required", "prompt");
    if (Array.isArray(prompt) && prompt.length > 1 && typeof prompt[0] !== "number")
      throw new HttpError(400, "prompt: a batch of several prompts is not supported; send one per request", "prompt");
  }
  const streamOptions = body["stream_options"];
  if (streamOptions !== undefined && streamOptions !== null && !isRecord(streamOptions))
    throw new HttpError(400, "stream_options must be an object", "stream_options");
  const stream = optionalBoolean(body, "stream") ?? false;
  const includeUsage = isRecord(streamOptions) ? (optionalBoolean(streamOptions, "include_usage") ?? false) : false;
  if (isRecord(streamOptions) && !stream)
    throw new HttpError(400, "stream_options is only allowed when stream is true", "stream_options");
  const maxTokens = optionalCount(body, "max_completion_tokens") ?? optionalCount(body, "max_tokens");
  const nvext = body["nvext"];
  if (nvext !== undefined && nvext !== null && !isRecord(nvext))
    throw new HttpError(400, "nvext must be an object", "nvext");
  const tokenData =
    isRecord(nvext) && nvext["token_data"] !== undefined && nvext["token_data"] !== null
      ? tokenIds(nvext["token_data"], "nvext.token_data")
      : undefined;
  const kvTransferParams = body["kv_transfer_params"];
  if (kvTransferParams !== undefined && kvTransferParams !== null && !isRecord(kvTransferParams))
    throw new HttpError(400, "kv_transfer_params must be an object", "kv_transfer_params");
  return {
    kind,
    model,
    stream,
    includeUsage,
    maxTokens,
    tokenData,
    promptIsTokens:
      kind === "completions" && Array.isArray(prompt) && (prompt.length === 0 || typeof prompt[0] !== "string"),
    kvTransferParams: isRecord(kvTransferParams) ? kvTransferParams : undefined,
  };
}

/** Fields a decode request's `kv_transfer_params` must carry when `do_remote_prefill` is set (vLLM's NixlConnector). */
export const REMOTE_PREFILL_FIELDS = [
  "remote_engine_id",
  "remote_request_id",
  "remote_host",
  "remote_port",
  "remote_block_ids",
] as const;

/** The KV-transfer role of a request: `send` (prefill for a remote decode), `receive` (decode of a remote prefill) or none. */
export function transferRole(params: Readonly<Record<string, unknown>> | undefined): "send" | "receive" | null {
  if (params === undefined) return null;
  if (params["do_remote_decode"] === true && params["do_remote_prefill"] === true)
    throw new HttpError(
      400,
      "kv_transfer_params: do_remote_decode and do_remote_prefill cannot both be true",
      "kv_transfer_params",
    );
  if (params["do_remote_decode"] === true) return "send";
  if (params["do_remote_prefill"] !== true) return null;
  const missing = REMOTE_PREFILL_FIELDS.filter((field) => params[field] === undefined || params[field] === null);
  if (missing.length > 0)
    throw new HttpError(
      400,
      `kv_transfer_params: do_remote_prefill needs ${missing.join(", ")} (the prefill response's kv_transfer_params)`,
      "kv_transfer_params",
    );
  return "receive";
}
