import { seededRng } from "@dynamo/primitives";
import { TRACE_BLOCK_TOKENS, writeBlockTokens, type TraceRequest } from "../mooncake.js";

/**
 * The requests a routing simulation replays: an arrival time, an output length and a prompt made of
 * segments, each segment the token stream of one seed (equal seeds at equal positions give equal
 * tokens, so shared prefixes stay shared). Prompts are synthesised when a request arrives and dropped
 * when it ends, so a whole trace never sits in memory.
 */
export interface SimRequest {
  readonly arrivalMs: number;
  readonly outputLength: number;
  readonly inputLength: number;
  /** `[seed, tokens]` pairs, concatenated (the last one may be cut by `inputLength`). */
  readonly segments: ReadonlyArray<readonly [number, number]>;
}

export interface Workload {
  readonly name: string;
  /** One line describing its shape, for the docs. */
  readonly description: string;
  readonly requests: readonly SimRequest[];
}

/** Writes a request's prompt tokens into `out` (at least `inputLength` long). */
export function writePromptTokens(request: SimRequest, out: Uint32Array): Uint32Array {
  let offset = 0;
  for (const [seed, length] of request.segments) {
    if (offset >= request.inputLength) break;
    const take = Math.min(length, request.inputLength - offset);
    writeBlockTokens(seed, out, offset, take);
    offset += take;
  }
  return out.subarray(0, request.inputLength);
}

/** A Mooncake trace, arrivals divided by `speedup`: each 512-token `hash_id` one segment. */
export function traceWorkload(trace: readonly TraceRequest[], speedup: number): Workload {
  return {
    name: "trace",
    description: "Mooncake trace",
    requests: trace.map((r) => ({
      arrivalMs: r.timestamp / speedup,
      outputLength: Math.max(1, r.outputLength),
      inputLength: r.inputLength,
      segments: r.hashIds.map((id) => [id, TRACE_BLOCK_TOKENS] as const),
    })),
  };
}

/**
 * Arrival times of a trace slice with each run of equal timestamps spread evenly up to the next distinct
 * one (the last run over the slice's mean gap between distinct timestamps). The Mooncake trace records
 * arrivals at a few seconds' granularity, ten or so requests per timestamp; replayed as recorded, those
 * arrive at the same instant, which no gateway sees.
 */
export function spreadArrivals(trace: readonly TraceRequest[]): number[] {
  const out = trace.map((r) => r.timestamp);
  const distinct = [...new Set(out)];
  const lastGap = distinct.length > 1 ? (distinct[distinct.length - 1]! - distinct[0]!) / (distinct.length - 1) : 0;
  for (let i = 0; i < out.length;) {
    let j = i;
    while (j < out.length && out[j] === out[i]) j++;
    const gap = j < out.length ? out[j]! - out[i]! : lastGap;
    for (let k = i; k < j; k++) out[k] = out[i]! + ((k - i) / (j - i)) * gap;
    i = j;
  }
  return out;
}

/**
 * `copies` copies of a Mooncake trace slice replayed together, arrivals spread (`spreadArrivals`) and
 * divided by `speedup`: the arrival rate grows `copies`-fold while every conversation keeps its own turns
 * and timing. Copy `c` shifts every block id by `c` × (the slice's largest id + 1), so copies share no
 * content (each is a different set of users), and its arrivals by `c / copies` of the slice's mean gap,
 * so copies interleave.
 */
export function tiledTraceWorkload(trace: readonly TraceRequest[], copies: number, speedup: number): Workload {
  if (!Number.isInteger(copies) || copies < 1) throw new Error(`copies must be a positive integer, got ${copies}`);
  let maxId = 0;
  for (const r of trace) for (const id of r.hashIds) maxId = Math.max(maxId, id);
  const arrivals = spreadArrivals(trace);
  const span = arrivals.length > 1 ? arrivals[arrivals.length - 1]! - arrivals[0]! : 0;
  const meanGapMs = arrivals.length > 1 ? span / (arrivals.length - 1) / speedup : 0;
  const requests: SimRequest[] = [];
  for (let c = 0; c < copies; c++) {
    const idShift = c * (maxId + 1);
    const timeShift = (c / copies) * meanGapMs;
    trace.forEach((r, i) =>
      requests.push({
        arrivalMs: arrivals[i]! / speedup + timeShift,
        outputLength: Math.max(1, r.outputLength),
        inputLength: r.inputLength,
        segments: r.hashIds.map((id) => [id + idShift, TRACE_BLOCK_TOKENS] as const),
      }),
    );
  }
  requests.sort((a, b) => a.arrivalMs - b.arrivalMs);
  return {
    name: "trace",
    description: `Mooncake trace, ${copies} disjoint ${copies === 1 ? "copy" : "copies"} of ${trace.length} requests, arrivals spread`,
    requests,
  };
}

/** Seeds of synthetic segments start here, far from the trace's block ids. */
const SYNTHETIC_SEED = 1 << 30;

export interface SharedPrefixOptions {
  readonly groups: number;
  readonly promptsPerGroup: number;
  readonly systemPromptLength: number;
  readonly questionLength: number;
  readonly outputLength: number;
  /** Poisson arrival rate (requests/s) before the speedup. */
  readonly rate: number;
  readonly seed: number;
}

export const SHARED_PREFIX_DEFAULTS: SharedPrefixOptions = {
  groups: 150,
  promptsPerGroup: 5,
  systemPromptLength: 6000,
  questionLength: 1200,
  outputLength: 1000,
  rate: 2,
  seed: 1,
};

/** Exponential inter-arrival gaps (ms) at `ratePerSec`. */
function poissonClock(ratePerSec: number, rng: () => number): () => number {
  let t = 0;
  return () => (t += (-Math.log(1 - rng()) / ratePerSec) * 1000);
}

/**
 * inference-perf's `shared_prefix`: `groups` system prompts, each followed by `promptsPerGroup`
 * distinct questions; the prompts of all groups interleaved in random order, Poisson arrivals.
 */
export function sharedPrefixWorkload(o: SharedPrefixOptions, speedup: number): Workload {
  const rng = seededRng(o.seed);
  const prompts: Array<readonly [number, number]> = [];
  for (let g = 0; g < o.groups; g++) for (let p = 0; p < o.promptsPerGroup; p++) prompts.push([g, p]);
  for (let i = prompts.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [prompts[i], prompts[j]] = [prompts[j]!, prompts[i]!];
  }
  const next = poissonClock(o.rate * speedup, rng);
  return {
    name: "shared-prefix",
    description: `${o.groups} groups × ${o.promptsPerGroup} prompts, ${o.systemPromptLength}-token system prompt + ${o.questionLength}-token question, ${o.outputLength} output tokens, Poisson ${o.rate} requests/s × speedup`,
    requests: prompts.map(([g, p]) => ({
      arrivalMs: next(),
      outputLength: o.outputLength,
      inputLength: o.systemPromptLength + o.questionLength,
      segments: [
        [SYNTHETIC_SEED + g, o.systemPromptLength],
        [SYNTHETIC_SEED + (1 << 20) + g * o.promptsPerGroup + p, o.questionLength],
      ],
    })),
  };
}

export interface MultiTurnOptions {
  readonly sessions: number;
  readonly turns: number;
  readonly systemPromptLength: number;
  readonly turnLength: number;
  readonly outputLength: number;
  /** New sessions per second before the speedup (Poisson). */
  readonly sessionRate: number;
  /** Think time between a session's turns (ms, before the speedup). */
  readonly thinkMs: number;
  readonly seed: number;
}

export const MULTI_TURN_DEFAULTS: MultiTurnOptions = {
  sessions: 200,
  turns: 5,
  systemPromptLength: 1000,
  turnLength: 300,
  outputLength: 200,
  sessionRate: 0.5,
  thinkMs: 20_000,
  seed: 2,
};

/**
 * Chat sessions: each turn's prompt is the previous turn's prompt plus the previous answer and a new
 * user message, so every turn extends the last one. Sessions start as a Poisson process; a session's
 * turns follow after a fixed think time.
 */
export function multiTurnWorkload(o: MultiTurnOptions, speedup: number): Workload {
  const rng = seededRng(o.seed);
  const nextStart = poissonClock(o.sessionRate * speedup, rng);
  const requests: SimRequest[] = [];
  for (let s = 0; s < o.sessions; s++) {
    const start = nextStart();
    const segments: Array<readonly [number, number]> = [[SYNTHETIC_SEED + (s % 4), o.systemPromptLength]];
    for (let t = 0; t < o.turns; t++) {
      const base = SYNTHETIC_SEED + (2 << 20) + (s * o.turns + t) * 2;
      if (t > 0) segments.push([base - 1, o.outputLength]);
      segments.push([base, o.turnLength]);
      requests.push({
        arrivalMs: start + (t * o.thinkMs) / speedup,
        outputLength: o.outputLength,
        inputLength: segments.reduce((a, [, n]) => a + n, 0),
        segments: [...segments],
      });
    }
  }
  requests.sort((a, b) => a.arrivalMs - b.arrivalMs);
  return {
    name: "multi-turn",
    description: `${o.sessions} sessions × ${o.turns} turns (4 shared ${o.systemPromptLength}-token system prompts, ${o.turnLength}-token user turns, ${o.outputLength}-token answers), ${o.sessionRate} new sessions/s × speedup, ${o.thinkMs / 1000} s think time`,
    requests,
  };
}
