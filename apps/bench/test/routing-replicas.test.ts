import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { bench } from "../src/benches/routing-replicas.js";
import { Progress } from "../src/framework.js";
import { loadTrace } from "../src/mooncake.js";
import { summarise } from "../src/routing/metrics.js";
import { policyByName } from "../src/routing/policies.js";
import { replayPolicy } from "../src/routing/replay.js";
import { parseSweepOptions, type SweepCell } from "../src/routing/replica-sweep.js";
import { spreadArrivals, tiledTraceWorkload } from "../src/routing/workloads.js";
import { renderReport } from "../src/report.js";

const root = fileURLToPath(new URL("../../..", import.meta.url));

describe("replica sweep", () => {
  it(
    "runs every replica count × sync delay per fleet; one replica is a plain replay; a long delay changes decisions",
    { timeout: 600_000 },
    async () => {
      const args = ["--fleets", "8,16", "--limit", "60,30", "--replica-counts", "4,1", "--sync-delays-ms", "0.5,2000"];
      const result = await bench.run({ args, json: true, progress: new Progress("replica sweep test"), root });
      const cells = result.figures.cells as unknown as SweepCell[];
      expect(cells.map((c) => `${c.workers}:${c.replicas}:${c.syncDelayMs}`)).toEqual([
        "8:1:null",
        "8:4:0.5",
        "8:4:2000",
        "16:1:null",
        "16:4:0.5",
        "16:4:2000",
      ]);

      // One replica is exactly the routing simulator's replay of the same workload and seed.
      const o = parseSweepOptions(args);
      for (const [workers, limit] of [
        [8, 60],
        [16, 30],
      ] as const) {
        const workload = tiledTraceWorkload(loadTrace(root, o.trace, limit), workers / 8, o.speedup);
        const plain = summarise(
          await replayPolicy(
            workload.requests,
            policyByName("ours"),
            { ...o.sim, workers, replicas: 1, syncDelayMs: 0 },
            () => undefined,
          ),
          o.speedup,
        );
        const one = cells.find((c) => c.workers === workers && c.replicas === 1)!;
        expect(one.requests).toBe(limit * (workers / 8));
        expect([one.ttftP50Ms, one.ttftP99Ms, one.reuseRatio]).toEqual([
          plain.ttftP50Ms,
          plain.ttftP99Ms,
          plain.reuseRatio,
        ]);
        expect([one.ttftP50VsOne, one.reuseVsOne, one.conflictRate]).toEqual([1, 1, 0]);
      }

      for (const c of cells) {
        expect(c.ttftP50Ms).toBeGreaterThan(0);
        expect(c.ttftP99Ms).toBeGreaterThanOrEqual(c.ttftP50Ms);
        const one = cells.find((x) => x.workers === c.workers && x.replicas === 1)!;
        expect(c.ttftP50VsOne).toBeCloseTo(c.ttftP50Ms / one.ttftP50Ms, 2);
      }
      // A delay longer than the whole arrival span: replicas never see each other's bookings in time,
      // so they change far more decisions than with a half-millisecond delay, and never route better.
      for (const workers of [8, 16]) {
        const at = (d: number) => cells.find((c) => c.workers === workers && c.syncDelayMs === d)!;
        expect(at(2000).conflictRate!).toBeGreaterThan(at(0.5).conflictRate! + 0.1);
        expect(at(2000).ttftP50Ms).toBeGreaterThan(at(0.5).ttftP50Ms);
      }

      expect(result.markdown).toContain("### 8 workers");
      expect(result.markdown).toContain("| 4 | 2000 ms |");
      // Per fleet: TTFT p50, TTFT p99, reuse and conflicts, one line per sync delay from R = 1 to R = 4.
      expect(result.charts!.map((c) => c.title)).toHaveLength(8);
      for (const chart of result.charts!) {
        expect(chart.kind).toBe("line");
        if (chart.kind !== "line") continue;
        expect(chart.series.map((s) => s.name)).toEqual(["sync delay 0.5 ms", "sync delay 2000 ms"]);
        for (const s of chart.series) expect(s.points.map((p) => p[0])).toEqual([1, 4]);
      }
      const html = renderReport("routing-replicas", result, "test machine", "npm run bench -- routing-replicas");
      expect(html.match(/<figure class="chart"/g)).toHaveLength(8);
    },
  );

  it("rejects fleets that are not whole copies of the slice, and a limit list of the wrong length", () => {
    expect(() => parseSweepOptions(["--fleets", "12"])).toThrow(/multiple of --workers-per-copy 8/);
    expect(() => parseSweepOptions(["--fleets", "8,16", "--limit", "1,2,3"])).toThrow(/one per fleet size/);
    expect(parseSweepOptions(["--quick"]).fleets).toEqual([64]);
  });
});

describe("tiled trace workload", () => {
  const trace = [0, 0, 0, 3000, 3000].map((timestamp, i) => ({
    timestamp,
    inputLength: 600,
    outputLength: 5,
    hashIds: [0, 10 + i],
  }));

  it("spreads each run of equal timestamps up to the next one", () => {
    expect(spreadArrivals(trace)).toEqual([0, 1000, 2000, 3000, 4500]);
  });

  it("replays disjoint copies, interleaved in time", () => {
    const w = tiledTraceWorkload(trace, 2, 10);
    expect(w.requests).toHaveLength(10);
    const arrivals = w.requests.map((r) => r.arrivalMs);
    expect(arrivals).toEqual([...arrivals].sort((a, b) => a - b));
    // Copy 1 follows copy 0 by half the mean gap (4500 ms / 4 gaps / speedup 10 / 2 copies).
    expect(arrivals.slice(0, 4)).toEqual([0, 56.25, 100, 156.25]);
    const ids = (copy: number) =>
      new Set(w.requests.filter((_, i) => i % 2 === copy).flatMap((r) => r.segments.map(([id]) => id)));
    const [a, b] = [ids(0), ids(1)];
    expect([...a].some((id) => b.has(id))).toBe(false);
    expect(a.has(0) && b.has(15)).toBe(true);
  });
});
