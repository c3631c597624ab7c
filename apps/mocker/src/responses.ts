import type { RequestResult } from "@dynamo/engine-sim";
import type { RequestKind } from "./request.js";

/** What every response of one request shares. */
export interface ResponseContext {
  readonly kind: RequestKind;
  readonly id: string;
  readonly created: number;
  readonly model: string;
}

export interface Usage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
  readonly prompt_tokens_details: { readonly cached_tokens: number };
}

export function usageOf(result: RequestResult): Usage {
  return {
    prompt_tokens: result.promptTokens,
    completion_tokens: result.outputTokens,
    total_tokens: result.promptTokens + result.outputTokens,
    prompt_tokens_details: { cached_tokens: result.cachedTokens },
  };
}

/** vLLM's finish reason: the mocker never samples EOS, so every finished request stopped on its length. */
const FINISH_REASON = "length";

/** The whole (non-streamed) response. */
export function completionBody(
  ctx: ResponseContext,
  text: string,
  result: RequestResult,
  kvTransferParams: Record<string, unknown> | null,
): Record<string, unknown> {
  const choice =
    ctx.kind === "chat"
      ? {
          index: 0,
          message: { role: "assistant", content: text, refusal: null, tool_calls: [], reasoning_content: null },
          logprobs: null,
          finish_reason: FINISH_REASON,
          stop_reason: null,
        }
      : { index: 0, text, logprobs: null, finish_reason: FINISH_REASON, stop_reason: null, prompt_logprobs: null };
  return {
    id: ctx.id,
    object: ctx.kind === "chat" ? "chat.completion" : "text_completion",
    created: ctx.created,
    model: ctx.model,
    choices: [choice],
    usage: usageOf(result),
    prompt_logprobs: null,
    kv_transfer_params: kvTransferParams,
  };
}

/** One SSE chunk: `delta` text (chat: `role` on the first), or the finishing chunk when `finish` is set. */
export function chunkBody(
  ctx: ResponseContext,
  piece: { text: string; first?: boolean; finish?: boolean },
): Record<string, unknown> {
  const finishReason = piece.finish === true ? FINISH_REASON : null;
  const choice =
    ctx.kind === "chat"
      ? {
          index: 0,
          delta: piece.first === true ? { role: "assistant", content: piece.text } : { content: piece.text },
          logprobs: null,
          finish_reason: finishReason,
        }
      : { index: 0, text: piece.text, logprobs: null, finish_reason: finishReason, stop_reason: null };
  return {
    id: ctx.id,
    object: ctx.kind === "chat" ? "chat.completion.chunk" : "text_completion",
    created: ctx.created,
    model: ctx.model,
    choices: [choice],
  };
}

/** The usage chunk of `stream_options.include_usage` (no choices). */
export function usageChunkBody(ctx: ResponseContext, result: RequestResult): Record<string, unknown> {
  return {
    id: ctx.id,
    object: ctx.kind === "chat" ? "chat.completion.chunk" : "text_completion",
    created: ctx.created,
    model: ctx.model,
    choices: [],
    usage: usageOf(result),
  };
}

export function sse(value: unknown): string {
  return `data: ${JSON.stringify(value)}\n\n`;
}
