import { seededRng } from "@dynamo/primitives";
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** One request of a Mooncake-format trace. */
export interface TraceRequest {
  /** Arrival time in ms from the start of the trace. */
  readonly timestamp: number;
  readonly inputLength: number;
  readonly outputLength: number;
  /** One id per 512-token block (the last one partial); equal ids mean identical content and prefix. */
  readonly hashIds: readonly number[];
}

/** Tokens each Mooncake `hash_id` stands for. */
export const TRACE_BLOCK_TOKENS = 512;

/** The Mooncake conversation trace shipped with the benchmarks (see `apps/bench/data/README.md`). */
export const MOONCAKE_CONVERSATION_TRACE = "apps/bench/data/mooncake_conversation_trace.jsonl";

/** Loads a Mooncake JSONL trace (path relative to the repository root unless absolute). */
export function loadTrace(root: string, path = MOONCAKE_CONVERSATION_TRACE, limit = Infinity): TraceRequest[] {
  const text = readFileSync(path.startsWith("/") ? path : join(root, path), "utf8");
  const out: TraceRequest[] = [];
  for (const line of text.split("\n")) {
    if (out.length >= limit) break;
    if (!line.trim()) continue;
    const r = JSON.parse(line) as {
      timestamp?: number;
      delay?: number;
      input_length: number;
      output_length: number;
      hash_ids: number[];
    };
    out.push({
      timestamp: r.timestamp ?? r.delay ?? 0,
      inputLength: r.input_length,
      outputLength: r.output_length,
      hashIds: r.hash_ids,
    });
  }
  return out;
}

/** The 512 token ids a trace block id stands for: a PRNG stream seeded by the id (vocabulary 151 643). */
export function blockTokens(hashId: number, vocab = 151_643): Uint32Array {
  const next = seededRng(hashId * 2654435761 + 1);
  const out = new Uint32Array(TRACE_BLOCK_TOKENS);
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(next() * vocab);
  return out;
}

/** A request's prompt tokens: its blocks' tokens concatenated, truncated to `inputLength`. */
export function requestTokens(request: TraceRequest, cache?: Map<number, Uint32Array>): Uint32Array {
  const out = new Uint32Array(request.inputLength);
  let offset = 0;
  for (const id of request.hashIds) {
    if (offset >= out.length) break;
    let block = cache?.get(id);
    if (!block) {
      block = blockTokens(id);
      cache?.set(id, block);
    }
    const take = Math.min(block.length, out.length - offset);
    out.set(take === block.length ? block : block.subarray(0, take), offset);
    offset += take;
  }
  return out;
}
