import type { Chart } from "../framework.js";
import type { SweepCell, SweepResult } from "./replica-sweep.js";

/**
 * The replica sweep's plots, per fleet size: TTFT p50 and p99, prefix reuse and decision conflicts
 * against the replica count, one line per sync delay (each starting from the one-replica point).
 */
export function replicaSweepCharts(result: SweepResult): Chart[] {
  const charts: Chart[] = [];
  for (const fleet of result.fleets) {
    const cells = result.cells.filter((c) => c.workers === fleet.workers);
    const one = cells.find((c) => c.replicas === 1);
    const delays = [...new Set(cells.flatMap((c) => (c.syncDelayMs === null ? [] : [c.syncDelayMs])))];
    const vsReplicas = (title: string, yLabel: string, pick: (c: SweepCell) => number | null, logY = false): Chart => ({
      kind: "line",
      title: `${title} (${fleet.workers} workers)`,
      xLabel: "router replicas",
      yLabel,
      logX: true,
      logY,
      series: delays.map((d) => ({
        name: `sync delay ${d} ms`,
        points: [...(one ? [one] : []), ...cells.filter((c) => c.syncDelayMs === d)].flatMap((c) => {
          const v = pick(c);
          return v === null ? [] : [[c.replicas, v] as [number, number]];
        }),
      })),
    });
    charts.push(
      vsReplicas("TTFT p50 vs router replicas", "TTFT p50 (ms)", (c) => c.ttftP50Ms, true),
      vsReplicas("TTFT p99 vs router replicas", "TTFT p99 (ms)", (c) => c.ttftP99Ms, true),
      vsReplicas("Prefix reuse vs router replicas (cached / prompt tokens)", "reuse ratio", (c) => c.reuseRatio),
      vsReplicas("Decisions the sync delay changed", "fraction of decisions", (c) => c.conflictRate),
    );
  }
  return charts;
}
