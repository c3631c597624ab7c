import { loadavg } from "node:os";
import { markdownTable, round, type Bench } from "../framework.js";
import { replicaSweepCharts } from "../routing/replica-charts.js";
import {
  parseSweepOptions,
  runReplicaSweep,
  type SweepCell,
  type SweepOptions,
  type SweepResult,
} from "../routing/replica-sweep.js";

/**
 * The limits of several router replicas: this router's quality as one router and as R replicas that
 * share their bookings after a sync delay D, at two fleet sizes, in the routing simulator's virtual time.
 */

/** "Within 5 % of one replica": the live multi-replica target, applied to every cell. */
const TOLERANCE = 0.05;
/** Below this reuse ratio (one replica), reuse ratios between cells are noise. */
const LOW_REUSE = 0.02;
const LIMITS_TITLE =
  "Limits: how many replicas keep TTFT p50 within 5 % of one replica's and lose no more than 5 % of its reuse " +
  "(or half a percentage point, whichever is more):";
/** Reuse differences below half a percentage point are within run-to-run noise. */
const REUSE_NOISE = 0.005;

const pct = (v: number | null) => (v === null ? "—" : `${round(100 * v, 1)}%`);
const times = (v: number) => `×${v}`;

function fleetTable(cells: readonly SweepCell[]): string {
  return markdownTable(
    [
      "replicas",
      "sync delay",
      "TTFT mean / p50 / p99 (ms)",
      "reuse",
      "mean vs 1",
      "p50 vs 1",
      "p99 vs 1",
      "reuse vs 1",
      "decisions changed",
    ],
    cells.map((c) => [
      c.replicas,
      c.syncDelayMs === null ? "—" : `${c.syncDelayMs} ms`,
      `${c.ttftMeanMs} / ${c.ttftP50Ms} / ${c.ttftP99Ms}`,
      pct(c.reuseRatio),
      times(c.ttftMeanVsOne),
      times(c.ttftP50VsOne),
      times(c.ttftP99VsOne),
      times(c.reuseVsOne),
      pct(c.conflictRate),
    ]),
  );
}

/**
 * TTFT p50 within 5 % of one replica, and reuse too (unless one replica's reuse is too low to compare):
 * no lower than 5 % or half a percentage point below one replica's, whichever is more (a few percent of
 * reuse moves by a few tenths of a point between runs that differ only in tie-breaks).
 */
const withinTolerance = (c: SweepCell, one: SweepCell, reuseComparable: boolean) =>
  c.ttftP50VsOne <= 1 + TOLERANCE &&
  (!reuseComparable || c.reuseRatio >= one.reuseRatio - Math.max(TOLERANCE * one.reuseRatio, REUSE_NOISE));

/** Per fleet and sync delay: the most replicas still within 5 % of one, and the worst cell. */
function limitsReading(r: SweepResult): string {
  const lines: string[] = [];
  for (const fleet of r.fleets) {
    const cells = r.cells.filter((c) => c.workers === fleet.workers && c.syncDelayMs !== null);
    const one = r.cells.find((c) => c.workers === fleet.workers && c.replicas === 1);
    const reuseComparable = one !== undefined && one.reuseRatio >= LOW_REUSE;
    const delays = [...new Set(cells.map((c) => c.syncDelayMs!))];
    const parts = delays.map((d) => {
      const at = cells.filter((c) => c.syncDelayMs === d).sort((a, b) => a.replicas - b.replicas);
      const firstOut = at.find((c) => one !== undefined && !withinTolerance(c, one, reuseComparable));
      const lastIn = [...at].reverse().find((c) => c.replicas < (firstOut?.replicas ?? Infinity));
      const top = at[at.length - 1]!;
      const limit = !firstOut
        ? "within 5 % at every R swept"
        : lastIn
          ? `within 5 % up to R = ${lastIn.replicas}, out from R = ${firstOut.replicas}`
          : `out of 5 % from R = ${firstOut.replicas}`;
      return `D = ${d} ms: ${limit}; at R = ${top.replicas} TTFT mean ${times(top.ttftMeanVsOne)}, p50 ${times(top.ttftP50VsOne)}, p99 ${times(top.ttftP99VsOne)}, reuse ${times(top.reuseVsOne)}, ${pct(top.conflictRate)} of decisions changed`;
    });
    const noisy = reuseComparable
      ? ""
      : ` (one replica reuses only ${pct(one?.reuseRatio ?? null)} of prompt tokens on this slice: reuse ratios are noise there and the limit is on TTFT p50 alone)`;
    lines.push(`- ${fleet.workers} workers${noisy} — ${parts.join("; ")}.`);
  }
  return lines.join("\n");
}

/** Why quality falls with replicas and delay: true whatever the figures are. */
const MECHANISM =
  "How to read it. Every replica hears every engine's KV events after the same delay, so replicas agree on " +
  "where prefixes are cached; what they do not see at once is each other's bookings. A request routed by one " +
  "replica is invisible to the others for the sync delay, so in that window they keep scoring its worker as " +
  "lighter than it is and can send more requests to the same cheapest worker (herding) before the booking " +
  "arrives. The bookings a replica misses at any instant are the other replicas' decisions of the last D ms, " +
  "(R − 1)/R of the fleet's arrivals in D, which at the same load per worker grow with the fleet: the cheapest " +
  "worker of a large fleet attracts more unseen requests. “Decisions changed” counts, per decision, whether a shadow router that sees every booking " +
  "at once would have scored the replica's choice worse than its own best (a tie is no change). TTFT p99 is " +
  "noisier than p50 (a few dozen requests make the tail of the short slices), and on a short slice every percentile " +
  "moves in steps: its copies repeat the same few prompt lengths, so TTFTs bunch at a few values (the mean moves smoothly).";

/** Below this many virtual seconds of arrivals, a fleet's run is its first moments of load. */
const SHORT_SECONDS = 5;

function shortText(r: SweepResult): string {
  const short = r.fleets.filter((f) => f.arrivalSeconds < SHORT_SECONDS);
  if (short.length === 0) return "";
  return (
    ` The ${short.map((f) => `${f.workers.toLocaleString("en-US")}-worker`).join(" and ")} slice covers less than ${SHORT_SECONDS} s ` +
    "of arrivals (a longer one costs minutes per cell): queues have barely formed and conversations have not come back for a " +
    "second turn, so its TTFT sits near prefill time and its reuse near zero; what it shows is the herding of many replicas " +
    "onto the same workers, at the arrival rate of a large fleet."
  );
}

function workloadText(o: SweepOptions, r: SweepResult): string {
  const fleets = r.fleets
    .map(
      (f) =>
        `${f.workers} workers: the trace's first ${f.limit} requests × ${f.copies} ${f.copies === 1 ? "copy" : "copies"} = ${f.requests.toLocaleString("en-US")} requests over ${f.arrivalSeconds} s of virtual time, ${f.ratePerWorker} requests/s per worker`,
    )
    .join("; ");
  return (
    `Policy \`ours\` (this router, KV events after ${o.sim.eventDelayMs} ms), requests handed to the replicas in turn (a gateway ` +
    `balancing them), replicas 1, ${o.replicas.filter((x) => x > 1).join(", ")} × sync delays ${o.syncDelaysMs.join(", ")} ms. ` +
    `Each fleet replays Mooncake conversation-trace copies at arrival speedup ×${o.speedup}, one copy per ${o.workersPerCopy} workers ` +
    `(the copies share no content: each block id is shifted per copy), so every fleet carries the same load per worker as the routing ` +
    `bench's ×${o.speedup} on 8 workers. The trace records arrivals a few seconds apart, ten or so requests per timestamp; each run of ` +
    `equal timestamps is spread evenly up to the next one, since replicas handed simultaneous requests collide whatever the delay. ${fleets}.${shortText(r)} Workers of ${o.sim.numGpuBlocks.toLocaleString("en-US")} KV blocks × ${o.sim.blockSize} tokens ` +
    `(${(o.sim.numGpuBlocks * o.sim.blockSize).toLocaleString("en-US")} tokens of KV cache each; the routing bench's hold 16,384 × 64 = 1,048,576; ` +
    `512 is the trace's own block size, and fewer, larger blocks keep 16 replicas' indexes affordable). ` +
    `The whole sweep took ${r.wallSeconds} s of wall time (1-minute load average ${round(loadavg()[0]!, 2)}).`
  );
}

export const bench: Bench = {
  name: "routing-replicas",
  description:
    "The limits of several router replicas, in the routing simulator's virtual time: this router as one router and as R " +
    "replicas sharing their bookings after a sync delay D (`routing --replicas R --sync-delay-ms D`), at 64 and 1,024 " +
    "simulated workers, with TTFT, prefix reuse and the share of decisions the delay changed, each against one replica. " +
    "Options: `--fleets 64,1024 --limit 200,20 --replica-counts 1,2,4,8,16 --sync-delays-ms 0.5,5,50 --arrival-speedup 8 " +
    "--workers-per-copy 8 --block-size 512 --num-gpu-blocks 2048 --event-delay-ms 5 --seed 1 --trace <jsonl> --no-conflicts --tie-band 0`; " +
    "`--quick` runs 64 workers on 120 requests per copy.",
  async run(ctx) {
    const o = parseSweepOptions(ctx.args);
    const r = await runReplicaSweep(ctx.root, o, ctx.progress);
    const tables = r.fleets.map(
      (f) => `### ${f.workers} workers\n\n${fleetTable(r.cells.filter((c) => c.workers === f.workers))}`,
    );
    const limits = limitsReading(r);
    if (!ctx.json) console.log(`\n${tables.join("\n\n")}\n\n${LIMITS_TITLE}\n${limits}\n`);
    const figures = {
      trace: o.trace,
      arrivalSpeedup: o.speedup,
      workersPerCopy: o.workersPerCopy,
      blockSize: o.sim.blockSize,
      numGpuBlocks: o.sim.numGpuBlocks,
      fleets: r.fleets.map((f) => ({ ...f })),
      cells: r.cells.map((c) => ({ ...c })),
      wallSeconds: r.wallSeconds,
      loadAverage1m: round(loadavg()[0]!, 2),
    };
    const markdown =
      `${workloadText(o, r)}\n\n${tables.join("\n\n")}\n\n` + `${LIMITS_TITLE}\n\n${limits}\n\n${MECHANISM}\n`;
    return { figures, markdown, charts: replicaSweepCharts(r) };
  },
};
