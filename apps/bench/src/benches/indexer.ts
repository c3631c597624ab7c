import { cpus, loadavg } from "node:os";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Engine, VirtualLoop, type KvEventBatch } from "@dynamo/engine-sim";
import { VllmEventTranslator } from "@dynamo/kv-events";
import { computeBlockHashes, RadixIndex, type RouterEvent } from "@dynamo/kv-indexer";
import {
  cdfPoints,
  markdownTable,
  percentile,
  round,
  type Bench,
  type BenchContext,
  type Chart,
} from "../framework.js";
import {
  MOONCAKE_CONVERSATION_TRACE,
  TRACE_BLOCK_TOKENS,
  blockTokens,
  loadTrace,
  requestTokens,
  type TraceRequest,
} from "../mooncake.js";

/**
 * KV-indexer throughput on a Mooncake-derived event + lookup stream.
 *
 * Workload: every request of the trace is routed round-robin to one of `workers` simulated vLLM
 * engines (`@dynamo/engine-sim` in virtual time: `capacity` KV blocks, prefix caching, lineage
 * eviction, chunked prefill with a `chunkTokens` step budget), whose KV batches are translated into
 * router events. The router's `findMatches` for the request comes first.
 * The whole stream is generated before timing; the timed loop only feeds the index.
 */

interface Options {
  blockSize: number;
  workers: number;
  capacity: number;
  chunkTokens: number;
  rounds: number;
  limit: number;
  /** Mooncake-format trace (repository-relative or absolute path). */
  trace: string;
}

interface Stream {
  queries: BigUint64Array[];
  /** Events of request `i` are `events[eventStart[i] .. eventStart[i + 1])`. */
  events: RouterEvent[];
  eventStart: Int32Array;
  stored: number;
  removed: number;
  removedBlocks: number;
  storedBlocks: number;
  queryBlocks: number;
}

interface RoundResult {
  totalMs: number;
  /** CPU time of the process during the round (all threads): unaffected by waiting for a CPU. */
  cpuMs: number;
  applyMs: number;
  findMs: number;
  findLatencyUs: Float64Array;
  size: number;
}

function parseOptions(args: readonly string[]): Options {
  const value = (name: string, fallback: number): number => {
    const at = args.indexOf(`--${name}`);
    if (at < 0) return fallback;
    const parsed = Number(args[at + 1]);
    if (!Number.isFinite(parsed) || parsed <= 0) throw new Error(`--${name} needs a positive number`);
    return parsed;
  };
  const options = {
    blockSize: value("block-size", 64),
    workers: value("workers", 8),
    capacity: value("capacity", 16_384),
    chunkTokens: value("chunk-tokens", 8192),
    rounds: value("rounds", 5),
    limit: value("limit", Infinity),
    trace: MOONCAKE_CONVERSATION_TRACE,
  };
  const traceAt = args.indexOf("--trace");
  if (traceAt >= 0) {
    const path = args[traceAt + 1];
    if (!path || path.startsWith("--")) throw new Error("--trace needs a path to a Mooncake-format JSONL trace");
    options.trace = path;
  }
  if (TRACE_BLOCK_TOKENS % options.blockSize !== 0) throw new Error(`--block-size must divide ${TRACE_BLOCK_TOKENS}`);
  return options;
}

/** Local hashes of a request's full router blocks; per trace block id they depend only on its tokens. */
function requestLocalHashes(
  request: TraceRequest,
  blockSize: number,
  cache: Map<number, BigUint64Array>,
): BigUint64Array {
  const perTraceBlock = TRACE_BLOCK_TOKENS / blockSize;
  const out = new BigUint64Array(Math.floor(request.inputLength / blockSize));
  let filled = 0;
  request.hashIds.forEach((id, j) => {
    const tokens = Math.min(TRACE_BLOCK_TOKENS, request.inputLength - j * TRACE_BLOCK_TOKENS);
    if (tokens < blockSize) return;
    let hashes = tokens === TRACE_BLOCK_TOKENS ? cache.get(id) : undefined;
    if (!hashes) {
      hashes = computeBlockHashes(blockTokens(id).subarray(0, tokens), blockSize);
      if (tokens === TRACE_BLOCK_TOKENS) cache.set(id, hashes);
    }
    out.set(hashes.subarray(0, Math.min(perTraceBlock, out.length - filled)), filled);
    filled += hashes.length;
  });
  return out;
}

/**
 * Replays the trace on `workers` simulated vLLM engines (`@dynamo/engine-sim`, virtual time, requests
 * round-robin at their trace timestamps) and translates every KV batch into router events as the router
 * service does. A request's lookup comes first; the events the engines publish until the next arrival
 * follow it.
 */
function generateStream(ctx: BenchContext, options: Options): Stream {
  const trace = loadTrace(ctx.root, options.trace, options.limit);
  const events: RouterEvent[] = [];
  const counters = { stored: 0, removed: 0, storedBlocks: 0, removedBlocks: 0 };
  const loop = new VirtualLoop();
  const engines = Array.from({ length: options.workers }, (_, w) => {
    const translator = new VllmEventTranslator({ workerId: BigInt(1000 + w), dpRank: 0, blockSize: options.blockSize });
    const onKvEvents = (batch: KvEventBatch) => {
      for (const event of translator.translateBatch({ ...batch, unknownEvents: 0, invalidEvents: 0 })) {
        events.push(event);
        if (event.data.type === "stored") {
          counters.stored++;
          counters.storedBlocks += event.data.blockHashes.length;
        } else if (event.data.type === "removed") {
          counters.removed++;
          counters.removedBlocks += event.data.blockHashes.length;
        }
      }
    };
    return new Engine(
      {
        blockSize: options.blockSize,
        numGpuBlocks: options.capacity,
        maxNumBatchedTokens: options.chunkTokens,
        blockHash: "xxh3",
        onKvEvents,
      },
      loop.clock,
    );
  });
  loop.add(...engines);
  const hashCache = new Map<number, BigUint64Array>();
  const queries: BigUint64Array[] = [];
  const eventStart = new Int32Array(trace.length + 1);
  let queryBlocks = 0;
  trace.forEach((request, i) => {
    loop.advanceTo(request.timestamp);
    const prompt = requestLocalHashes(request, options.blockSize, hashCache);
    queries.push(prompt);
    queryBlocks += prompt.length;
    eventStart[i] = events.length;
    engines[i % engines.length]!.addRequest({
      id: String(i),
      tokens: requestTokens(request),
      maxTokens: Math.max(1, request.outputLength),
    });
    if ((i & 255) === 0) ctx.progress.update("generating stream", i + 1, trace.length);
  });
  loop.runUntilIdle();
  ctx.progress.update("generating stream", trace.length, trace.length);
  // Events after the last arrival belong to the last request's slot.
  eventStart[trace.length] = events.length;
  return { queries, events, eventStart, ...counters, queryBlocks };
}

function runRound(stream: Stream): RoundResult {
  const index = new RadixIndex();
  const { queries, events, eventStart } = stream;
  const findLatencyUs = new Float64Array(queries.length);
  let applyMs = 0;
  let findMs = 0;
  const startCpu = process.cpuUsage();
  const start = performance.now();
  for (let i = 0; i < queries.length; i++) {
    const t0 = performance.now();
    index.findMatches(queries[i]!);
    const t1 = performance.now();
    for (let e = eventStart[i]!, end = eventStart[i + 1]!; e < end; e++) index.apply(events[e]!);
    const t2 = performance.now();
    findLatencyUs[i] = (t1 - t0) * 1000;
    findMs += t1 - t0;
    applyMs += t2 - t1;
  }
  const totalMs = performance.now() - start;
  const cpu = process.cpuUsage(startCpu);
  const errors = Object.values(index.errorCounts).reduce((a, b) => a + b, 0);
  if (errors > 0) throw new Error(`the generated stream produced apply errors: ${JSON.stringify(index.errorCounts)}`);
  return { totalMs, cpuMs: (cpu.user + cpu.system) / 1000, applyMs, findMs, findLatencyUs, size: index.size };
}

function medianOf(values: number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
}

function memoryMB(): number {
  const usage = process.memoryUsage();
  return (usage.heapUsed + usage.arrayBuffers) / 2 ** 20;
}

setFlagsFromString("--expose-gc");
const collectGarbage = runInNewContext("gc") as () => void;

async function settledGarbage(): Promise<void> {
  collectGarbage();
  await new Promise((resolve) => setTimeout(resolve, 100));
  collectGarbage();
}

export const bench: Bench = {
  name: "indexer",
  description:
    "RadixIndex (`@dynamo/kv-indexer`) alone on a pre-generated event + lookup stream derived from the Mooncake conversation trace: " +
    "requests round-robin over simulated vLLM engines (`@dynamo/engine-sim`, virtual time) whose KV events are translated as the router service does. " +
    "Options: `--block-size 64 --workers 8 --capacity 16384 --chunk-tokens 8192 --rounds 5 --limit <requests> --trace <jsonl>`.",
  async run(ctx) {
    const options = parseOptions(ctx.args);
    const stream = generateStream(ctx, options);
    const lookups = stream.queries.length;
    const events = stream.events.length;
    ctx.progress.note(
      `stream: ${lookups.toLocaleString("en-US")} lookups, ${events.toLocaleString("en-US")} events; timing ${options.rounds} rounds`,
    );

    const rounds: RoundResult[] = [];
    for (let r = 0; r < options.rounds; r++) {
      collectGarbage();
      rounds.push(runRound(stream));
      ctx.progress.update("timed rounds", r + 1, options.rounds);
    }
    // Memory of one index holding the final state (heap objects + typed-array buffers). Array-buffer
    // memory is released off the main thread after a collection, so settle before each reading.
    await settledGarbage();
    const before = memoryMB();
    const index = new RadixIndex();
    for (const event of stream.events) index.apply(event);
    await settledGarbage();
    const indexMB = memoryMB() - before;
    if (index.size !== rounds[0]!.size) throw new Error("index size differs between runs");
    // Headline: the median round by combined throughput; the best round approximates a quiet machine.
    const byThroughput = [...rounds].sort((a, b) => a.totalMs - b.totalMs);
    const median = byThroughput[Math.floor(byThroughput.length / 2)]!;
    const best = byThroughput[0]!;
    const latencies = Float64Array.from(median.findLatencyUs).sort();
    const ops = events + lookups;
    const figures = {
      applyOpsPerSec: Math.round(events / (median.applyMs / 1000)),
      findOpsPerSec: Math.round(lookups / (median.findMs / 1000)),
      opsPerSec: Math.round(ops / (median.totalMs / 1000)),
      bestOpsPerSec: Math.round(ops / (best.totalMs / 1000)),
      opsPerCpuSec: Math.round(ops / (medianOf(rounds.map((r) => r.cpuMs)) / 1000)),
      appliedBlocksPerSec: Math.round((stream.storedBlocks + stream.removedBlocks) / (median.applyMs / 1000)),
      findP50Us: round(percentile(latencies, 50)),
      findP99Us: round(percentile(latencies, 99)),
      findMaxUs: round(latencies[latencies.length - 1] ?? 0),
      heapMB: round(indexMB),
      processHeapMB: round(memoryMB()),
      events,
      lookups,
      storedEvents: stream.stored,
      removedEvents: stream.removed,
      removedBlocks: stream.removedBlocks,
      storedBlocks: stream.storedBlocks,
      meanQueryBlocks: round(stream.queryBlocks / lookups),
      finalIndexEntries: median.size,
      blockSize: options.blockSize,
      workers: options.workers,
      capacityBlocks: options.capacity,
      rounds: options.rounds,
      roundOpsPerSec: rounds.map((r) => Math.round(ops / (r.totalMs / 1000))),
      loadAverage1m: round(loadavg()[0]!),
    };
    const table = markdownTable(
      ["figure", "value"],
      [
        ["combined ops/s (median round)", figures.opsPerSec],
        ["combined ops/s (best round)", figures.bestOpsPerSec],
        ["combined ops per CPU-second (median round)", figures.opsPerCpuSec],
        ["apply ops/s", figures.applyOpsPerSec],
        ["findMatches ops/s", figures.findOpsPerSec],
        ["blocks stored + removed per second", figures.appliedBlocksPerSec],
        ["findMatches p50 / p99 (µs)", `${figures.findP50Us} / ${figures.findP99Us}`],
        [
          "events (stored / removed)",
          `${events.toLocaleString("en-US")} (${stream.stored.toLocaleString("en-US")} / ${stream.removed.toLocaleString("en-US")})`,
        ],
        ["lookups (mean blocks per query)", `${lookups.toLocaleString("en-US")} (${figures.meanQueryBlocks})`],
        ["index entries at the end", median.size],
        ["index memory (MB, heap + array buffers)", figures.heapMB],
      ],
    );
    const removedShare = round((100 * stream.removed) / events, 1);
    const target = 4_000_000;
    const verdict =
      figures.opsPerSec >= target
        ? "met"
        : `not met: the median round reaches ${round((100 * figures.opsPerSec) / target, 1)}% of it, the best round ${round((100 * figures.bestOpsPerSec) / target, 1)}%`;
    const markdown =
      `${table}\n\n` +
      `Target: ${target.toLocaleString("en-US")} combined ops/s on one thread, the published figure of Dynamo's single-threaded Rust radix tree ` +
      `(measured there on a 24-core desktop CPU): ${verdict}. ` +
      `An event here carries what one scheduling step changed (a request's new blocks, the step's evictions), so ops/s counts ` +
      `fewer, larger events than a stream of one event per evicted block; blocks stored + removed per second compares across both.\n\n` +
      `Workload: the ${lookups.toLocaleString("en-US")} requests of the Mooncake conversation trace, routed round-robin to ` +
      `${options.workers} simulated vLLM engines (\`@dynamo/engine-sim\` in virtual time, arrivals at their trace timestamps), each with ${options.capacity.toLocaleString("en-US")} KV blocks, ` +
      `prefix caching, lineage eviction and a step budget of ${options.chunkTokens} tokens (chunked prefill). ` +
      `Block size ${options.blockSize} tokens (each 512-token trace \`hash_id\` = ${TRACE_BLOCK_TOKENS / options.blockSize} blocks ` +
      `of deterministic tokens). Engines publish events as vLLM does (one batch per scheduling step: new blocks of a request in one \`stored\`, ` +
      `evictions grouped in \`removed\`), translated into router events as the router service does (${removedShare}% of events are removals; ` +
      `${round(figures.storedBlocks / Math.max(1, stream.stored), 1)} blocks per \`stored\`, ${round(stream.removedBlocks / Math.max(1, stream.removed), 1)} per \`removed\`). ` +
      `The router's \`findMatches\` for a request precedes its events. Events and queries (with their local hashes) are generated ` +
      `before timing; each round replays the whole stream into a fresh \`RadixIndex\` (event-id tracking on). ` +
      `One op = one event or one \`findMatches\`.\n\n` +
      `Headline figures are the median of ${options.rounds} rounds (${figures.roundOpsPerSec.map((v) => v.toLocaleString("en-US")).join(", ")} ops/s); ` +
      `the machine was shared with other work (1-minute load average ${figures.loadAverage1m} on ${cpus().length} CPUs), so the best ` +
      `round is the closest to a quiet machine, and ops per CPU-second (process CPU time, all threads) leaves out time spent waiting for a CPU.\n`;
    const charts: Chart[] = [
      {
        kind: "bar",
        title: "Throughput (median round)",
        unit: "ops/s",
        bars: [
          { label: "combined", value: figures.opsPerSec },
          { label: "apply", value: figures.applyOpsPerSec },
          { label: "findMatches", value: figures.findOpsPerSec },
        ],
      },
      {
        kind: "line",
        title: "findMatches latency CDF",
        xLabel: "µs",
        yLabel: "fraction of lookups",
        series: [{ name: "findMatches", points: cdfPoints(latencies) }],
      },
      {
        kind: "bar",
        title: "Combined throughput per round",
        unit: "ops/s",
        bars: figures.roundOpsPerSec.map((value, r) => ({ label: `round ${r + 1}`, value })),
      },
    ];
    return { figures, markdown, charts };
  },
};
