import { cpus, loadavg } from "node:os";
import { Engine, VirtualLoop, type BlockHashAlgorithm, type RequestResult } from "@dynamo/engine-sim";
import {
  cdfPoints,
  markdownTable,
  numberOption,
  percentile,
  round,
  textOption,
  type Bench,
  type BenchContext,
  type Chart,
} from "../framework.js";
import { MOONCAKE_CONVERSATION_TRACE, loadTrace, requestTokens, type TraceRequest } from "../mooncake.js";
import { TokenArena } from "../token-arena.js";

/**
 * Simulated vLLM engines replaying the Mooncake conversation trace in virtual time: how fast the
 * offline routing simulator can replay it once per policy.
 */

interface Options {
  workers: number;
  blockSize: number;
  numGpuBlocks: number;
  hash: BlockHashAlgorithm;
  limit: number;
  /** Requests replayed by each side-by-side variant. */
  compareLimit: number;
  /** Interleaved rounds of the side-by-side variants (the median is kept). */
  compareRounds: number;
  trace: string;
}

interface Variant {
  readonly label: string;
  readonly hash: BlockHashAlgorithm;
  readonly fastForward: boolean;
  readonly limit: number;
}

interface Replay {
  wallMs: number;
  cpuMs: number;
  requests: number;
  results: RequestResult[];
  virtualMs: number;
  loopEvents: number;
  batches: number;
  steps: number;
  generatedTokens: number;
  promptTokens: number;
  cachedTokens: number;
  preemptions: number;
  storedBlocks: number;
  removedBlocks: number;
}

function parseOptions(args: readonly string[]): Options {
  const hash = textOption(args, "hash", "xxh3");
  if (hash !== "xxh3" && hash !== "sha256_cbor") throw new Error("--hash must be xxh3 or sha256_cbor");
  return {
    workers: numberOption(args, "workers", 8),
    blockSize: numberOption(args, "block-size", 64),
    numGpuBlocks: numberOption(args, "num-gpu-blocks", 16_384),
    hash,
    limit: numberOption(args, "limit", Infinity),
    compareLimit: numberOption(args, "compare-limit", 2000),
    compareRounds: numberOption(args, "compare-rounds", 3),
    trace: textOption(args, "trace", MOONCAKE_CONVERSATION_TRACE),
  };
}

/**
 * Replays `trace` over `workers` engines on one virtual clock: each request arrives at its timestamp,
 * goes round-robin to the next engine with its prompt synthesised from the trace's block ids and its
 * output length as `maxTokens`. Every KV batch is consumed (counted) as a router would receive it.
 */
function replay(ctx: BenchContext, trace: readonly TraceRequest[], options: Options, variant: Variant): Replay {
  const loop = new VirtualLoop();
  let batches = 0;
  const onKvEvents = () => void batches++;
  const engines = Array.from(
    { length: options.workers },
    () =>
      new Engine(
        {
          blockSize: options.blockSize,
          numGpuBlocks: options.numGpuBlocks,
          blockHash: variant.hash,
          fastForward: variant.fastForward,
          onKvEvents,
        },
        loop.clock,
      ),
  );
  loop.add(...engines);
  let loopEvents = 0;
  const step = loop.step.bind(loop);
  loop.step = () => (loopEvents++, step());
  const results: RequestResult[] = [];
  const onFinish = (r: RequestResult) => void results.push(r);
  const arena = new TokenArena();
  const n = Math.min(trace.length, variant.limit);
  const phase = `${variant.label}: replaying`;
  const startCpu = process.cpuUsage();
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const r = trace[i]!;
    loop.advanceTo(r.timestamp);
    const tokens = requestTokens(r, arena.take(r.inputLength));
    engines[i % engines.length]!.addRequest({
      id: String(i),
      tokens,
      maxTokens: Math.max(1, r.outputLength),
      onFinish,
    });
    if ((i & 255) === 0) ctx.progress.update(phase, i, n);
  }
  loop.runUntilIdle();
  const wallMs = performance.now() - start;
  const cpu = process.cpuUsage(startCpu);
  ctx.progress.update(phase, n, n);
  if (results.length !== n) throw new Error(`${n - results.length} requests did not finish`);
  const stats = engines.map((e) => e.stats());
  const sum = (f: (s: (typeof stats)[number]) => number) => stats.reduce((a, s) => a + f(s), 0);
  return {
    wallMs,
    cpuMs: (cpu.user + cpu.system) / 1000,
    requests: n,
    results,
    virtualMs: loop.now(),
    loopEvents,
    batches,
    steps: sum((s) => s.steps),
    generatedTokens: sum((s) => s.generationTokens),
    promptTokens: sum((s) => s.prefixCacheQueries),
    cachedTokens: sum((s) => s.prefixCacheHits),
    preemptions: sum((s) => s.preemptions),
    storedBlocks: sum((s) => s.storedBlocks),
    removedBlocks: sum((s) => s.removedBlocks),
  };
}

const perSec = (r: Replay) => Math.round(r.requests / (r.wallMs / 1000));

export const bench: Bench = {
  name: "engine-sim",
  description:
    "Simulated vLLM engines (`@dynamo/engine-sim`) replaying the Mooncake conversation trace in virtual time, requests round-robin over the workers, " +
    "every KV batch consumed: wall time of the whole replay, prompt synthesis included. " +
    "Options: `--workers 8 --block-size 64 --num-gpu-blocks 16384 --hash xxh3|sha256_cbor --compare-limit 2000 --compare-rounds 3 --limit <requests> --trace <jsonl>`.",
  async run(ctx) {
    const options = parseOptions(ctx.args);
    const trace = loadTrace(ctx.root, options.trace, options.limit);
    const full = { label: `${options.hash}, fast-forward`, hash: options.hash, fastForward: true, limit: Infinity };
    // Cold: the first replay in this process (what a one-off simulation pays); warm: the same again.
    const cold = replay(ctx, trace, options, full);
    const warm = replay(ctx, trace, options, { ...full, label: `${full.label} (again)` });
    const m = Math.min(options.compareLimit, trace.length);
    const variants: Variant[] = [
      { label: "xxh3, fast-forward", hash: "xxh3", fastForward: true, limit: m },
      { label: "sha256_cbor, fast-forward", hash: "sha256_cbor", fastForward: true, limit: m },
      { label: "xxh3, step by step", hash: "xxh3", fastForward: false, limit: m },
    ];
    // Variants interleaved over a few rounds, the median round of each kept: the machine's noise and the
    // JIT's warm-up fall on every variant alike.
    const rounds = options.compareRounds;
    const runs: Replay[][] = variants.map(() => []);
    for (let r = 0; r < rounds; r++) variants.forEach((v, i) => runs[i]!.push(replay(ctx, trace, options, v)));
    const side = variants.map((variant, i) => ({
      variant,
      replay: [...runs[i]!].sort((a, b) => a.wallMs - b.wallMs)[Math.floor(rounds / 2)]!,
    }));
    const baseline = side[0]!.replay;

    const ttft = Float64Array.from(cold.results, (r) => r.ttftMs ?? 0).sort();
    const itl = Float64Array.from(
      cold.results.filter((r) => r.meanItlMs !== null),
      (r) => r.meanItlMs!,
    ).sort();
    const traceSeconds = round(cold.wallMs / 1000, 2);
    const figures = {
      simulatedRequestsPerSec: perSec(cold),
      traceSeconds,
      warmTraceSeconds: round(warm.wallMs / 1000, 2),
      warmSimulatedRequestsPerSec: perSec(warm),
      traceCpuSeconds: round(cold.cpuMs / 1000, 2),
      targetSeconds: 20,
      targetMet: traceSeconds < 20,
      requests: cold.requests,
      workers: options.workers,
      hash: options.hash,
      virtualSeconds: round(cold.virtualMs / 1000, 1),
      speedOverRealTime: round(cold.virtualMs / cold.wallMs, 1),
      steps: cold.steps,
      loopEvents: cold.loopEvents,
      kvBatches: cold.batches,
      generatedTokens: cold.generatedTokens,
      prefixHitRate: round(cold.cachedTokens / cold.promptTokens, 4),
      preemptions: cold.preemptions,
      storedBlocks: cold.storedBlocks,
      removedBlocks: cold.removedBlocks,
      ttftP50Ms: round(percentile(ttft, 50)),
      ttftP99Ms: round(percentile(ttft, 99)),
      meanItlP50Ms: round(percentile(itl, 50)),
      sideBySide: side.map(({ variant, replay: r }) => ({
        variant: variant.label,
        requests: r.requests,
        seconds: round(r.wallMs / 1000, 3),
        requestsPerSec: perSec(r),
        timeRatio: round(r.wallMs / baseline.wallMs, 2),
      })),
      loadAverage1m: round(loadavg()[0]!, 2),
    };
    if (side[2]!.replay.results.some((r, i) => r.endMs !== baseline.results[i]!.endMs))
      throw new Error("fast-forwarding changed the simulated timings");

    const table = markdownTable(
      ["figure", "value"],
      [
        [
          "whole trace, first replay (s)",
          `${figures.traceSeconds} (${figures.simulatedRequestsPerSec.toLocaleString("en-US")} requests/s)`,
        ],
        [
          "whole trace, second replay (s)",
          `${figures.warmTraceSeconds} (${figures.warmSimulatedRequestsPerSec.toLocaleString("en-US")} requests/s)`,
        ],
        ["process CPU, first replay (s)", figures.traceCpuSeconds],
        ["simulated time (s) / faster than real time", `${figures.virtualSeconds} / ×${figures.speedOverRealTime}`],
        [
          "engine steps / loop events",
          `${cold.steps.toLocaleString("en-US")} / ${cold.loopEvents.toLocaleString("en-US")}`,
        ],
        ["generated tokens", cold.generatedTokens.toLocaleString("en-US")],
        [
          "KV batches / blocks stored / removed",
          `${cold.batches.toLocaleString("en-US")} / ${cold.storedBlocks.toLocaleString("en-US")} / ${cold.removedBlocks.toLocaleString("en-US")}`,
        ],
        ["prefix-cache hit rate (tokens)", `${round(100 * figures.prefixHitRate, 2)}%`],
        ["TTFT p50 / p99 (ms, simulated)", `${figures.ttftP50Ms} / ${figures.ttftP99Ms}`],
      ],
    );
    const sideTable = markdownTable(
      ["variant", `first ${m.toLocaleString("en-US")} requests (s, median of ${rounds})`, "requests/s", "time ratio"],
      figures.sideBySide.map((s) => [s.variant, s.seconds, s.requestsPerSec, `×${s.timeRatio}`]),
    );
    const markdown =
      `${table}\n\nTarget: the whole trace (${cold.requests.toLocaleString("en-US")} requests, ${options.workers} workers) in under 20 s on one core: ` +
      `${figures.targetMet ? "met" : "not met"}.\n\n${sideTable}\n\n` +
      `Each replay builds ${options.workers} engines (${options.numGpuBlocks.toLocaleString("en-US")} blocks of ${options.blockSize} tokens, ` +
      `Dynamo mocker defaults otherwise) on one virtual clock; requests arrive at their trace timestamps, round-robin over the engines, ` +
      `with prompts synthesised from the trace's block ids (512 deterministic tokens per id) and the trace's output lengths. ` +
      `Engine block hashes: \`xxh3\` (Dynamo's router hashes) for the headline, vLLM's \`sha256_cbor\` side by side; ` +
      `"step by step" turns off running identical decode steps as one event (the results are identical, checked). ` +
      `The machine was shared with other work (1-minute load average ${figures.loadAverage1m} on ${cpus().length} CPUs).\n`;
    const charts: Chart[] = [
      {
        kind: "bar",
        title: `Simulated requests per wall-clock second (first ${m.toLocaleString("en-US")} requests)`,
        unit: "requests/s",
        bars: figures.sideBySide.map((s) => ({ label: s.variant, value: s.requestsPerSec })),
      },
      {
        kind: "line",
        title: "Simulated TTFT (whole trace, round-robin)",
        xLabel: "ms",
        yLabel: "fraction of requests",
        logX: true,
        series: [{ name: "TTFT", points: cdfPoints(ttft) }],
      },
    ];
    return { figures, markdown, charts };
  },
};
