import { reject, type RouteRejected } from "@dynamo/ext-proc";

export interface RemoteTokenizerOptions {
  /** Base URL of the renderer (`DYN_EPP_TOKENIZER_SERVICE_URL`). */
  readonly url: string;
  /** Give up after this long (`DYN_EPP_TOKENIZATION_TIMEOUT_MS`): 504. */
  readonly timeoutMs: number;
  /** Largest answer read (`DYN_EPP_TOKENIZER_MAX_RESPONSE_BYTES`): 502 beyond. */
  readonly maxResponseBytes: number;
}

/** A failed remote tokenization, with the answer the client gets (epp-protocol §8). */
export class RemoteTokenizerError extends Error {
  constructor(readonly rejection: RouteRejected) {
    super(rejection.message);
  }
}

const MAX_ERROR_TEXT = 512;

/**
 * Tokenization by a renderer service (vLLM's `render` endpoints, protocol `vllm-render`): the request
 * body goes unchanged to `POST <url>/v1/chat/completions/render` (or `/v1/completions/render`), and the
 * answer's `token_ids` are the prompt. A renderer that cannot be reached answers 503, one that is too
 * slow 504, a 4xx (the request is bad) 400, and a 5xx, an unreadable or oversized answer 502.
 */
export class RemoteTokenizer {
  constructor(private readonly options: RemoteTokenizerOptions) {}

  async tokenize(kind: "chat" | "completions", body: Uint8Array, signal: AbortSignal): Promise<number[]> {
    const path = kind === "chat" ? "/v1/chat/completions/render" : "/v1/completions/render";
    const url = this.options.url.replace(/\/+$/, "") + path;
    const timeout = AbortSignal.timeout(this.options.timeoutMs);
    let response: Response;
    try {
      response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        signal: AbortSignal.any([signal, timeout]),
      });
    } catch (error) {
      throw this.transportError(error, timeout);
    }
    let text: string;
    try {
      text = await this.readBounded(response);
    } catch (error) {
      if (error instanceof RemoteTokenizerError) throw error;
      throw this.transportError(error, timeout);
    }
    if (response.status >= 400 && response.status < 500) {
      throw new RemoteTokenizerError(
        reject("invalid_request", `the tokenizer refused the request: ${text.slice(0, MAX_ERROR_TEXT)}`),
      );
    }
    if (response.status >= 500 || response.status < 200 || response.status >= 300)
      throw upstream(`the tokenizer service answered HTTP ${response.status}`);
    let ids: unknown;
    try {
      ids = (JSON.parse(text) as { token_ids?: unknown }).token_ids;
    } catch {
      throw upstream("the tokenizer service answered with invalid JSON");
    }
    if (!Array.isArray(ids) || !ids.every((id) => Number.isInteger(id) && id >= 0 && id <= 0xffffffff))
      throw upstream("the tokenizer service's answer has no token_ids array of token ids");
    return ids as number[];
  }

  private transportError(error: unknown, timeout: AbortSignal): RemoteTokenizerError {
    if (timeout.aborted)
      return new RemoteTokenizerError(
        reject("tokenizer_timeout", `the tokenizer service did not answer within ${this.options.timeoutMs} ms`),
      );
    const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
    return new RemoteTokenizerError(reject("tokenizer_unavailable", `the tokenizer service is unreachable (${cause})`));
  }

  private async readBounded(response: Response): Promise<string> {
    const declared = Number(response.headers.get("content-length") ?? "0");
    if (declared > this.options.maxResponseBytes) {
      await response.body?.cancel();
      throw upstream(`the tokenizer service's answer exceeds ${this.options.maxResponseBytes} bytes`);
    }
    const parts: Uint8Array[] = [];
    let size = 0;
    for await (const chunk of response.body ?? []) {
      size += chunk.length;
      if (size > this.options.maxResponseBytes) break; // leaving the loop cancels the stream
      parts.push(chunk);
    }
    if (size > this.options.maxResponseBytes)
      throw upstream(`the tokenizer service's answer exceeds ${this.options.maxResponseBytes} bytes`);
    return Buffer.concat(parts).toString("utf8");
  }
}

function upstream(message: string): RemoteTokenizerError {
  return new RemoteTokenizerError(reject("tokenizer_upstream_error", message));
}
