import OpenAI from "openai";
import { requestTokens, type TraceRequest } from "../mooncake.js";

/** One request of a live replay, as the client saw it. */
export interface RequestSample {
  /** Position in the slice. */
  readonly index: number;
  readonly ok: boolean;
  /** What went wrong (status and message) when not `ok`. */
  readonly error?: string;
  /** Sent, ms after the replay started. */
  readonly sentMs: number;
  /** Request sent to the first generated token. */
  readonly ttftMs: number;
  /** Mean gap between consecutive tokens after the first. */
  readonly itlMs: number;
  /** Request sent to the last byte. */
  readonly e2eMs: number;
  readonly promptTokens: number;
  readonly cachedTokens: number;
  readonly outputTokens: number;
}

/**
 * A slice of a Mooncake trace: its first `conversations` conversations of at least `minTurns` turns, every turn, in
 * trace order. A conversation is the requests sharing their first two blocks (the trace's common first block and
 * the conversation's own); later turns extend earlier ones, which is what a KV-aware router can reuse. A short
 * contiguous window of the trace holds almost no such reuse: turns of one conversation lie minutes apart.
 */
export function conversationSlice(trace: readonly TraceRequest[], conversations: number, minTurns = 3): TraceRequest[] {
  const byKey = new Map<string, number[]>();
  trace.forEach((request, i) => {
    const key = request.hashIds.slice(0, 2).join(",");
    const turns = byKey.get(key);
    if (turns === undefined) byKey.set(key, [i]);
    else turns.push(i);
  });
  const chosen = [...byKey.values()].filter((turns) => turns.length >= minTurns).slice(0, conversations);
  return chosen
    .flat()
    .sort((a, b) => a - b)
    .map((i) => trace[i]!);
}

/** Σ cached / Σ prompt tokens a router that always finds every earlier block could reach on `slice`. */
export function idealReuse(slice: readonly TraceRequest[], blockTokens = 512): number {
  const seen = new Set<number>();
  let hit = 0;
  let total = 0;
  for (const request of slice) {
    let prefix = true;
    request.hashIds.forEach((id, i) => {
      const tokens = Math.max(0, Math.min(blockTokens, request.inputLength - i * blockTokens));
      if (prefix && seen.has(id)) hit += tokens;
      else prefix = false;
      total += tokens;
    });
    for (const id of request.hashIds) seen.add(id);
  }
  return total === 0 ? 0 : hit / total;
}

export interface ReplayOptions {
  readonly baseUrl: string;
  readonly model: string;
  /** Requests sent per second (open loop: each at its slot, whatever the earlier ones take). */
  readonly rate: number;
  /** Largest `max_tokens` sent (the trace's output length when smaller). */
  readonly maxOutputTokens: number;
  /** Per-request deadline. */
  readonly timeoutMs: number;
  readonly onProgress?: (done: number, total: number) => void;
}

/** The trace request as an OpenAI completion on token ids, streamed with usage. */
async function send(
  client: OpenAI,
  options: ReplayOptions,
  request: TraceRequest,
  index: number,
  t0: number,
): Promise<RequestSample> {
  const prompt = Array.from(requestTokens(request));
  const maxTokens = Math.max(1, Math.min(request.outputLength, options.maxOutputTokens));
  const sent = performance.now();
  let first = NaN;
  let last = NaN;
  let tokens = 0;
  let usage: OpenAI.CompletionUsage | undefined;
  const base = { index, sentMs: sent - t0, promptTokens: prompt.length };
  try {
    const stream = await client.completions.create({
      model: options.model,
      prompt,
      max_tokens: maxTokens,
      stream: true,
      stream_options: { include_usage: true },
    });
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      if (chunk.choices.some((c) => c.text !== "")) {
        const now = performance.now();
        if (Number.isNaN(first)) first = now;
        last = now;
        tokens++;
      }
    }
    const done = performance.now();
    if (Number.isNaN(first)) throw new Error("the stream ended without a token");
    const outputTokens = usage?.completion_tokens ?? tokens;
    return {
      ...base,
      ok: true,
      ttftMs: first - sent,
      itlMs: tokens > 1 ? (last - first) / (tokens - 1) : 0,
      e2eMs: done - sent,
      promptTokens: usage?.prompt_tokens ?? prompt.length,
      cachedTokens: usage?.prompt_tokens_details?.cached_tokens ?? 0,
      outputTokens,
    };
  } catch (error) {
    const status = error instanceof OpenAI.APIError && error.status !== undefined ? `${error.status} ` : "";
    return {
      ...base,
      ok: false,
      error: `${status}${(error as Error).message}`,
      ttftMs: NaN,
      itlMs: NaN,
      e2eMs: performance.now() - sent,
      cachedTokens: 0,
      outputTokens: 0,
    };
  }
}

/**
 * Sends `slice` through the gateway with the `openai` client at a fixed rate (open loop), every request a streamed
 * completion on the trace's token ids, and returns what each request measured, in slice order.
 */
export async function replaySlice(slice: readonly TraceRequest[], options: ReplayOptions): Promise<RequestSample[]> {
  const client = new OpenAI({
    baseURL: `${options.baseUrl}/v1`,
    apiKey: "unused",
    maxRetries: 0,
    timeout: options.timeoutMs,
  });
  const t0 = performance.now();
  let done = 0;
  const pending: Array<Promise<RequestSample>> = [];
  for (let i = 0; i < slice.length; i++) {
    const wait = t0 + (i * 1000) / options.rate - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    pending.push(
      send(client, options, slice[i]!, i, t0).then((sample) => {
        options.onProgress?.(++done, slice.length);
        return sample;
      }),
    );
  }
  return Promise.all(pending);
}

/** A few small requests (under one KV block: they leave no reusable cache) until the whole path answers. */
export async function warmUp(baseUrl: string, model: string, requests: number, timeoutMs: number): Promise<void> {
  const client = new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey: "unused", maxRetries: 0, timeout: 10_000 });
  const deadline = Date.now() + timeoutMs;
  let ok = 0;
  let lastError = "";
  while (ok < requests) {
    if (Date.now() > deadline) throw new Error(`the gateway did not answer within ${timeoutMs} ms: ${lastError}`);
    try {
      const stream = await client.completions.create({
        model,
        prompt: [1, 2, 3, 4, 5, 6, 7, ok],
        max_tokens: 4,
        stream: true,
      });
      for await (const chunk of stream) void chunk;
      ok++;
    } catch (error) {
      lastError = (error as Error).message;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}
