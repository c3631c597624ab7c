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
  const out = new Uint32Array(TRACE_BLOCK_TOKENS);
  writeBlockTokens(hashId, out, 0, out.length, vocab);
  return out;
}

/** Writes the first `count` token ids of trace block `hashId` into `out` at `offset` (as `blockTokens`). */
export function writeBlockTokens(
  hashId: number,
  out: Uint32Array,
  offset: number,
  count: number,
  vocab = 151_643,
): void {
  const next = seededRng(hashId * 2654435761 + 1);
  for (let i = 0; i < count; i++) out[offset + i] = Math.floor(next() * vocab);
}

/**
 * A request's prompt tokens: its blocks' tokens concatenated, truncated to `inputLength`; written into
 * `out` when given (at least `inputLength` long), else into a new array.
 */
export function requestTokens(
  request: TraceRequest,
  out: Uint32Array = new Uint32Array(request.inputLength),
): Uint32Array {
  let offset = 0;
  for (const id of request.hashIds) {
    if (offset >= request.inputLength) break;
    const take = Math.min(TRACE_BLOCK_TOKENS, request.inputLength - offset);
    writeBlockTokens(id, out, offset, take);
    offset += take;
  }
  return out;
}
