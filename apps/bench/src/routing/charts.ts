import { cdfPoints, type Chart } from "../framework.js";
import type { PolicyMetrics } from "./metrics.js";
import type { ReplayResult } from "./replay.js";

/** The routing report's plots. */
export function routingCharts(
  results: readonly PolicyMetrics[],
  replays: ReadonlyMap<string, ReplayResult>,
  loads: readonly number[],
  targetLoad: number,
): Chart[] {
  const policies = [...new Set(results.map((r) => r.policy))];
  const vsLoad = (title: string, yLabel: string, pick: (m: PolicyMetrics) => number, logY = false): Chart => ({
    kind: "line",
    title,
    logY,
    xLabel: "arrival speedup",
    yLabel,
    series: policies.map((p) => ({
      name: p,
      points: loads.flatMap((l) => {
        const m = results.find((r) => r.policy === p && r.load === l);
        return m ? [[l, pick(m)] as [number, number]] : [];
      }),
    })),
  });
  const charts: Chart[] = [
    {
      kind: "line",
      title: `TTFT CDF per policy (arrival speedup ×${targetLoad})`,
      xLabel: "TTFT (ms)",
      yLabel: "fraction of requests",
      logX: true,
      series: policies.flatMap((p) => {
        const r = replays.get(`${p}@${targetLoad}`);
        if (!r) return [];
        const ttft = Float64Array.from(r.ttftMs.filter((v) => !Number.isNaN(v))).sort();
        return [{ name: p, points: cdfPoints(ttft, 50) }];
      }),
    },
    vsLoad("TTFT p50 vs load", "ms", (m) => m.ttftP50Ms, true),
    vsLoad("TTFT p99 vs load", "ms", (m) => m.ttftP99Ms, true),
    vsLoad("Prefix reuse ratio vs load (cached / prompt tokens)", "ratio", (m) => m.reuseRatio),
    vsLoad("Output tokens/s vs load", "tokens/s", (m) => m.outputTokPerSec),
    vsLoad("Load imbalance vs load (max / mean in-flight requests per worker)", "ratio", (m) => m.loadImbalance),
  ];
  for (const p of ["ours", "round-robin"]) {
    const r = replays.get(`${p}@${targetLoad}`);
    if (!r) continue;
    const every = Math.max(1, Math.ceil(r.samples.timesMs.length / 300));
    charts.push({
      kind: "line",
      title: `Per-worker KV usage over time: ${p} (×${targetLoad})`,
      xLabel: "virtual time (s)",
      yLabel: "KV usage",
      series: r.samples.kvUsage.map((usage, w) => ({
        name: `worker ${w + 1}`,
        points: usage.flatMap((u, i) =>
          i % every === 0 ? [[r.samples.timesMs[i]! / 1000, u] as [number, number]] : [],
        ),
      })),
    });
  }
  const decisions = results.filter((r) => r.load === targetLoad && r.decisionP50Us !== null);
  charts.push({
    kind: "bar",
    title: `Routing decision latency p50 (µs, wall clock, ×${targetLoad})`,
    unit: "µs",
    bars: decisions.map((r) => ({ label: r.policy, value: r.decisionP50Us! })),
  });
  return charts;
}
