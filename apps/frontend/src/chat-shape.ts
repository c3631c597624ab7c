import type { JsonObject } from "./engine-request.js";

/** vLLM's completion logprobs: parallel arrays per generated token. */
interface CompletionLogprobs {
  tokens?: string[];
  token_logprobs?: Array<number | null>;
  top_logprobs?: Array<Record<string, number> | null>;
}

function asObject(value: unknown): JsonObject | undefined {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as JsonObject) : undefined;
}

function bytesOf(token: string): number[] {
  return Array.from(Buffer.from(token, "utf8"));
}

/** Completion logprobs in chat form: `{content: [{token, logprob, bytes, top_logprobs}]}`. */
export function chatLogprobs(value: unknown): JsonObject | null {
  const logprobs = asObject(value) as CompletionLogprobs | undefined;
  if (logprobs === undefined || !Array.isArray(logprobs.tokens)) return null;
  return {
    content: logprobs.tokens.map((token, i) => ({
      token,
      logprob: logprobs.token_logprobs?.[i] ?? -9999,
      bytes: bytesOf(token),
      top_logprobs: Object.entries(logprobs.top_logprobs?.[i] ?? {}).map(([top, logprob]) => ({
        token: top,
        logprob,
        bytes: bytesOf(top),
      })),
    })),
  };
}

function chatId(id: unknown): unknown {
  return typeof id === "string" && id.startsWith("cmpl-") ? `chat${id}` : id;
}

/** Copies every top-level member except `object`, `id` and `choices` (usage, kv_transfer_params, model, ...). */
function envelope(completion: JsonObject, object: string): JsonObject {
  const out: JsonObject = { ...completion, id: chatId(completion["id"]), object };
  delete out["choices"];
  return out;
}

/** A non-streamed completion response in chat shape (`message.content` = the generated text). */
export function completionToChat(completion: JsonObject): JsonObject {
  const choices = Array.isArray(completion["choices"]) ? (completion["choices"] as unknown[]) : [];
  const out = envelope(completion, "chat.completion");
  out["choices"] = choices.map((raw, i) => {
    const choice = asObject(raw) ?? {};
    const mapped: JsonObject = {
      index: choice["index"] ?? i,
      message: { role: "assistant", content: choice["text"] ?? "" },
      logprobs: chatLogprobs(choice["logprobs"]),
      finish_reason: choice["finish_reason"] ?? null,
    };
    if ("stop_reason" in choice) mapped["stop_reason"] = choice["stop_reason"];
    return mapped;
  });
  return out;
}

/**
 * Streamed completion chunks in chat-chunk shape: each choice's text becomes `delta.content`, and the
 * first delta of every choice index also carries `role: "assistant"`. A usage-only chunk (no choices)
 * keeps its usage. One mapper per response (it remembers which indexes have had their role).
 */
export function completionChunkMapper(): (chunk: JsonObject) => JsonObject {
  const started = new Set<unknown>();
  return (chunk) => {
    const choices = Array.isArray(chunk["choices"]) ? (chunk["choices"] as unknown[]) : [];
    const out = envelope(chunk, "chat.completion.chunk");
    out["choices"] = choices.map((raw, i) => {
      const choice = asObject(raw) ?? {};
      const index = choice["index"] ?? i;
      const delta: JsonObject = {};
      if (!started.has(index)) {
        started.add(index);
        delta["role"] = "assistant";
      }
      const text = choice["text"];
      if (typeof text === "string" && (text !== "" || delta["role"] !== undefined)) delta["content"] = text;
      const mapped: JsonObject = {
        index,
        delta,
        logprobs: chatLogprobs(choice["logprobs"]),
        finish_reason: choice["finish_reason"] ?? null,
      };
      if ("stop_reason" in choice) mapped["stop_reason"] = choice["stop_reason"];
      return mapped;
    });
    return out;
  };
}

/**
 * A non-streamed completion response as the SSE a streaming client expects (the prefill already
 * finished the request): one chunk with each choice's text and finish reason, a usage chunk when
 * `includeUsage`, then `[DONE]`. Events are returned as the JSON objects; the caller maps and frames them.
 */
export function completionAsChunks(completion: JsonObject, includeUsage: boolean): JsonObject[] {
  const { choices, usage, ...rest } = completion;
  const base = { ...rest, object: "text_completion" };
  const events: JsonObject[] = [{ ...base, choices: Array.isArray(choices) ? choices : [] }];
  if (includeUsage && usage !== undefined) events.push({ ...base, choices: [], usage });
  return events;
}

/** A non-streamed chat response as chunks for a streaming client: each message becomes one delta. */
export function chatAsChunks(chat: JsonObject, includeUsage: boolean): JsonObject[] {
  const { choices, usage, ...rest } = chat;
  const base = { ...rest, object: "chat.completion.chunk" };
  const list = Array.isArray(choices) ? (choices as unknown[]) : [];
  const events: JsonObject[] = [
    {
      ...base,
      choices: list.map((raw, i) => {
        const choice = asObject(raw) ?? {};
        return {
          index: choice["index"] ?? i,
          delta: asObject(choice["message"]) ?? { role: "assistant", content: "" },
          logprobs: choice["logprobs"] ?? null,
          finish_reason: choice["finish_reason"] ?? null,
        };
      }),
    },
  ];
  if (includeUsage && usage !== undefined) events.push({ ...base, choices: [], usage });
  return events;
}
