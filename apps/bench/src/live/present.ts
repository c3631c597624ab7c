import { cdfPoints, markdownTable, round, type BenchResult, type Chart, type Figure } from "../framework.js";
import { SIMULATOR_TOLERANCE, type LiveComparison, type LiveOptions } from "./compare.js";
import type { RunSummary } from "./metrics.js";

const ratio = (a: number, b: number) => (b === 0 ? NaN : round(a / b, 2));
const pct = (x: number) => `${round(x * 100, 1)} %`;

/** One sentence on what the comparison shows. */
export function verdict(c: LiveComparison): string {
  const { kv, roundRobin: rr } = c;
  if (kv.succeeded < kv.requests || rr.succeeded < rr.requests)
    return `Not every request succeeded (KV-aware ${kv.succeeded}/${kv.requests}, round-robin ${rr.succeeded}/${rr.requests}): see the errors above.`;
  const faster = rr.ttftP50Ms / kv.ttftP50Ms;
  const reuse = `${pct(kv.reuseRatio)} of prompt tokens came from cache with KV-aware routing against ${pct(rr.reuseRatio)} with round-robin`;
  const busiest = Math.max(...kv.perWorker) / Math.max(1, kv.succeeded);
  const herd =
    busiest > 0.5
      ? ` KV-aware routing sent ${pct(busiest)} of the requests to one worker (every conversation starts with the trace's common first block), so the cache it saved was spent queueing there.`
      : "";
  return faster >= 1
    ? `${reuse}, so the workers recomputed less and the first token came ${round(faster, 2)}× sooner at the median.${herd}`
    : `${reuse}, yet the median first token came ${round(1 / faster, 2)}× later.${herd || " At this load the cache savings did not outweigh queueing on the workers the prefixes pin requests to."}`;
}

/** The comparison as terminal lines. */
export function comparisonLines(c: LiveComparison): string[] {
  const { kv, roundRobin: rr } = c;
  const row = (name: string, a: string | number, b: string | number, r: string | number) =>
    `  ${name.padEnd(24)}${String(a).padStart(14)}${String(b).padStart(14)}${String(r).padStart(12)}`;
  const lines = [
    row("", "KV-aware", "round-robin", "ratio"),
    row("TTFT p50 (ms)", kv.ttftP50Ms, rr.ttftP50Ms, ratio(kv.ttftP50Ms, rr.ttftP50Ms)),
    row("TTFT p99 (ms)", kv.ttftP99Ms, rr.ttftP99Ms, ratio(kv.ttftP99Ms, rr.ttftP99Ms)),
    row("cache reuse", pct(kv.reuseRatio), pct(rr.reuseRatio), ratio(kv.reuseRatio, rr.reuseRatio)),
    row("output tokens/s", kv.outputTokPerSec, rr.outputTokPerSec, ratio(kv.outputTokPerSec, rr.outputTokPerSec)),
    row("ITL mean (ms)", kv.itlMeanMs, rr.itlMeanMs, ratio(kv.itlMeanMs, rr.itlMeanMs)),
    row("e2e p50 (ms)", kv.e2eP50Ms, rr.e2eP50Ms, ratio(kv.e2eP50Ms, rr.e2eP50Ms)),
    row("requests per worker", kv.perWorker.join("/"), rr.perWorker.join("/"), ""),
    row("succeeded", `${kv.succeeded}/${kv.requests}`, `${rr.succeeded}/${rr.requests}`, ""),
    row("picker decision p50 (ms)", kv.eppDecisionP50Ms, rr.eppDecisionP50Ms, ""),
  ];
  for (const [name, run] of [
    ["KV-aware", kv],
    ["round-robin", rr],
  ] as const)
    for (const [error, count] of Object.entries(run.errors)) lines.push(`  ${name} error ×${count}: ${error}`);
  return lines;
}

function simulatorRows(c: LiveComparison): Array<Array<string | number>> {
  if (c.simulated === undefined) return [];
  const within = (live: number, sim: number) =>
    Math.abs(live - sim) <= SIMULATOR_TOLERANCE.relative * Math.max(live, sim) ? "within" : "outside";
  return (["kv", "roundRobin"] as const).flatMap((mode) => {
    const live = c[mode];
    const sim = c.simulated![mode];
    return [
      [mode, "TTFT p50 ms", live.ttftP50Ms, sim.ttftP50Ms, within(live.ttftP50Ms, sim.ttftP50Ms)],
      [mode, "TTFT p99 ms", live.ttftP99Ms, sim.ttftP99Ms, within(live.ttftP99Ms, sim.ttftP99Ms)],
      [
        mode,
        "output tok/s",
        live.outputTokPerSec,
        sim.outputTokPerSec,
        within(live.outputTokPerSec, sim.outputTokPerSec),
      ],
      [
        mode,
        "reuse",
        live.reuseRatio,
        sim.reuseRatio,
        Math.abs(live.reuseRatio - sim.reuseRatio) <= SIMULATOR_TOLERANCE.reuseAbsolute ? "within" : "outside",
      ],
    ];
  });
}

function runFigures(run: RunSummary): Record<string, Figure> {
  const { ttftSorted, errors, ...rest } = run;
  void ttftSorted;
  return { ...rest, errors: Object.fromEntries(Object.entries(errors)) };
}

/** Figures, markdown and charts of the comparison (the benchmark's result and the demo's report). */
export function comparisonResult(c: LiveComparison, options: LiveOptions): BenchResult {
  const { kv, roundRobin: rr } = c;
  const header = ["", "KV-aware", "round-robin", "KV / RR"];
  const table = markdownTable(header, [
    ["TTFT p50 ms", kv.ttftP50Ms, rr.ttftP50Ms, ratio(kv.ttftP50Ms, rr.ttftP50Ms)],
    ["TTFT p99 ms", kv.ttftP99Ms, rr.ttftP99Ms, ratio(kv.ttftP99Ms, rr.ttftP99Ms)],
    ["TTFT mean ms", kv.ttftMeanMs, rr.ttftMeanMs, ratio(kv.ttftMeanMs, rr.ttftMeanMs)],
    ["ITL mean ms", kv.itlMeanMs, rr.itlMeanMs, ratio(kv.itlMeanMs, rr.itlMeanMs)],
    ["e2e p50 ms", kv.e2eP50Ms, rr.e2eP50Ms, ratio(kv.e2eP50Ms, rr.e2eP50Ms)],
    ["e2e p99 ms", kv.e2eP99Ms, rr.e2eP99Ms, ratio(kv.e2eP99Ms, rr.e2eP99Ms)],
    ["output tokens/s", kv.outputTokPerSec, rr.outputTokPerSec, ratio(kv.outputTokPerSec, rr.outputTokPerSec)],
    ["prefix reuse (responses)", pct(kv.reuseRatio), pct(rr.reuseRatio), ratio(kv.reuseRatio, rr.reuseRatio)],
    ["prefix reuse (workers' counters)", pct(kv.workerReuseRatio), pct(rr.workerReuseRatio), ""],
    ["requests per worker", kv.perWorker.join(" / "), rr.perWorker.join(" / "), ""],
    ["success rate", pct(kv.successRate), pct(rr.successRate), ""],
    [
      "picker decision p50 / p99 ms",
      `${kv.eppDecisionP50Ms} / ${kv.eppDecisionP99Ms}`,
      `${rr.eppDecisionP50Ms} / ${rr.eppDecisionP99Ms}`,
      "",
    ],
    ["picker selection mean ms", kv.eppSelectionMeanMs, rr.eppSelectionMeanMs, ""],
  ]);
  const sim = simulatorRows(c);
  const simulatorSection =
    sim.length > 0
      ? markdownTable(
          ["mode", "figure", "live", "simulated", `tolerance ±${SIMULATOR_TOLERANCE.relative * 100} %`],
          sim,
        )
      : "The offline simulator's figures for this slice are not shown: no simulator replay is plugged into `runLive` (`SimulatorReplay` in `apps/bench/src/live/compare.ts`).";
  const markdown = [
    `${c.slice.requests} requests (${c.slice.conversations} conversations of the Mooncake conversation trace, every turn, trace order) at ${options.rate} requests/s through the dev gateway, ${options.workers} mocker workers (speedup ×${options.speedupRatio}, block size ${options.blockSize}, ${options.gpuBlocks} KV blocks each), output capped at ${options.maxOutputTokens} tokens, KV events over ${options.eventPlane === "zmq" ? "ZeroMQ" : "NATS"}. Each mode starts fresh processes (cold caches). Best possible reuse on this slice (every earlier block found): ${pct(c.slice.idealReuse)}.`,
    "",
    table,
    "",
    `${verdict(c)}`,
    "",
    simulatorSection,
    "",
    "- **TTFT**: client-observed (the `openai` client, streamed completion on the trace's token ids) from sending to the first token; **ITL**: mean gap between tokens; **e2e**: to the last byte.",
    "- **Prefix reuse (responses)**: Σ `usage.prompt_tokens_details.cached_tokens` / Σ prompt tokens; **workers' counters**: `vllm:prefix_cache_hits_total` / `vllm:prefix_cache_queries_total` of the mockers.",
    '- **Picker decision**: body received to decision (tokenization, index lookup, scoring), from the picker\'s decision log; **selection mean**: `dynamo_epp_phase_duration_seconds{phase="selection"}` from its `/metrics`.',
    `- Every process (mocker, ${options.workers} frontends, picker, gateway${options.eventPlane === "nats" ? ", nats-server" : ""}) shares this machine's cores with the client: the wall-clock figures include that contention, equally for both modes.`,
  ].join("\n");
  const charts: Chart[] = [
    {
      kind: "line",
      title: "Time to first token (CDF)",
      xLabel: "ms",
      yLabel: "fraction of requests",
      series: [
        { name: "KV-aware", points: cdfPoints(kv.ttftSorted, 50) },
        { name: "round-robin", points: cdfPoints(rr.ttftSorted, 50) },
      ],
    },
    {
      kind: "bar",
      title: "Prefix reuse (Σ cached / Σ prompt tokens)",
      unit: "%",
      bars: [
        { label: "KV-aware", value: round(kv.reuseRatio * 100, 1) },
        { label: "round-robin", value: round(rr.reuseRatio * 100, 1) },
        { label: "best possible", value: round(c.slice.idealReuse * 100, 1) },
      ],
    },
  ];
  return {
    figures: {
      requests: c.slice.requests,
      idealReuse: round(c.slice.idealReuse, 4),
      kv: runFigures(kv),
      roundRobin: runFigures(rr),
      kvVsRoundRobinTtftP50: ratio(kv.ttftP50Ms, rr.ttftP50Ms),
      kvVsRoundRobinReuse: ratio(kv.reuseRatio, rr.reuseRatio),
      wallSeconds: round(c.wallSeconds, 1),
      ...(c.simulated !== undefined ? { simulated: c.simulated } : {}),
    },
    markdown,
    charts,
  };
}
