import { DEFAULT_SETTINGS } from "@dynamo/kv-router";
import { numberOption, round, textOption, type Progress } from "../framework.js";
import { MOONCAKE_CONVERSATION_TRACE, loadTrace } from "../mooncake.js";
import { summarise } from "./metrics.js";
import { nonNegative, numberList } from "./options.js";
import { policyByName } from "./policies.js";
import { replayPolicy, type SimConfig } from "./replay.js";
import { tiledTraceWorkload } from "./workloads.js";

/**
 * The replica sweep: this router's quality as one router and as R replicas sharing their bookings after
 * a sync delay D, at several fleet sizes. Each fleet replays its own slice of the Mooncake trace, tiled
 * into `workers / workersPerCopy` disjoint copies so that every fleet carries the same load per worker.
 */

export interface SweepOptions {
  readonly trace: string;
  /** Fleet sizes (simulated workers), in increasing order. */
  readonly fleets: readonly number[];
  /** Per fleet: the trace requests of one copy (its first ones). */
  readonly limits: readonly number[];
  /** Router replica counts; 1 (the reference) is always run. */
  readonly replicas: readonly number[];
  /** Sync delays (ms) swept for every replica count above 1. */
  readonly syncDelaysMs: readonly number[];
  /** Arrival speedup of every copy. */
  readonly speedup: number;
  /** Workers one copy of the slice loads: a fleet of N workers replays N / workersPerCopy copies. */
  readonly workersPerCopy: number;
  /** Engine and router settings shared by every cell. */
  readonly sim: Omit<SimConfig, "workers" | "replicas" | "syncDelayMs">;
}

export const SWEEP_DEFAULTS = {
  fleets: [64, 1024],
  limits: [200, 20],
  replicas: [1, 2, 4, 8, 16],
  syncDelaysMs: [0.5, 5, 50],
  speedup: 8,
  workersPerCopy: 8,
  // The trace's own block (512 tokens): 16 replicas' indexes stay affordable, and 2,048 blocks keep the
  // routing bench's 1 M tokens of KV cache per worker.
  blockSize: 512,
  numGpuBlocks: 2048,
} as const;

/** `--quick`: one fleet of 64 workers, a shorter slice. */
export const SWEEP_QUICK = { fleets: [64], limits: [120] } as const;

export function parseSweepOptions(args: readonly string[]): SweepOptions {
  const quick = args.includes("--quick");
  const fleets = numberList(args, "fleets", quick ? SWEEP_QUICK.fleets : SWEEP_DEFAULTS.fleets, false);
  const workersPerCopy = numberOption(args, "workers-per-copy", SWEEP_DEFAULTS.workersPerCopy);
  for (const f of fleets)
    if (!Number.isInteger(f / workersPerCopy))
      throw new Error(`every fleet size must be a multiple of --workers-per-copy ${workersPerCopy}, got ${f}`);
  const defaultLimits = quick
    ? SWEEP_QUICK.limits
    : fleets.map((f) => {
        const at = SWEEP_DEFAULTS.fleets.indexOf(f as 64 | 1024);
        return at >= 0 ? SWEEP_DEFAULTS.limits[at]! : SWEEP_DEFAULTS.limits[0];
      });
  let limits = numberList(args, "limit", defaultLimits, false);
  if (limits.length === 1) limits = fleets.map(() => limits[0]!);
  if (limits.length !== fleets.length || limits.some((l) => !Number.isInteger(l)))
    throw new Error("--limit needs one whole number of trace requests, or one per fleet size (e.g. 200,20)");
  const replicas = numberList(args, "replica-counts", SWEEP_DEFAULTS.replicas);
  if (replicas.some((r) => !Number.isInteger(r))) throw new Error("--replica-counts needs whole numbers");
  const syncDelaysMs = numberList(args, "sync-delays-ms", SWEEP_DEFAULTS.syncDelaysMs);
  const blockSize = numberOption(args, "block-size", SWEEP_DEFAULTS.blockSize);
  if (!Number.isInteger(blockSize) || 512 % blockSize !== 0)
    throw new Error("--block-size must divide 512 (16, 32, 64, 128, 256 or 512) so trace blocks stay aligned");
  return {
    trace: textOption(args, "trace", MOONCAKE_CONVERSATION_TRACE),
    fleets,
    limits,
    replicas: replicas.includes(1) ? replicas : [1, ...replicas],
    syncDelaysMs,
    speedup: numberOption(args, "arrival-speedup", SWEEP_DEFAULTS.speedup),
    workersPerCopy,
    sim: {
      blockSize,
      numGpuBlocks: numberOption(args, "num-gpu-blocks", SWEEP_DEFAULTS.numGpuBlocks),
      eventDelayMs: numberOption(args, "event-delay-ms", 5),
      scrapeIntervalMs: 50,
      sampleIntervalMs: 1000,
      seed: numberOption(args, "seed", 1),
      measureConflicts: !args.includes("--no-conflicts"),
      tieBand: nonNegative(args, "tie-band", DEFAULT_SETTINGS.replicaTieBand),
    },
  };
}

/** One cell of the sweep: a fleet size, a replica count and (above one replica) a sync delay. */
export interface SweepCell {
  readonly workers: number;
  readonly replicas: number;
  /** Null for one replica (nothing to sync). */
  readonly syncDelayMs: number | null;
  readonly requests: number;
  readonly ttftMeanMs: number;
  readonly ttftP50Ms: number;
  readonly ttftP99Ms: number;
  /** Cached prompt tokens / prompt tokens. */
  readonly reuseRatio: number;
  /** This cell's figure / one replica's, same fleet. */
  readonly ttftMeanVsOne: number;
  readonly ttftP50VsOne: number;
  readonly ttftP99VsOne: number;
  readonly reuseVsOne: number;
  /** Fraction of decisions a router seeing every booking at once would have made otherwise (null: not measured). */
  readonly conflictRate: number | null;
  readonly wallSeconds: number;
}

/** A fleet's workload: how many copies, requests and virtual seconds. */
export interface SweepFleet {
  readonly workers: number;
  readonly limit: number;
  readonly copies: number;
  readonly requests: number;
  /** Arrival span in virtual seconds. */
  readonly arrivalSeconds: number;
  /** Mean arrivals per second per worker. */
  readonly ratePerWorker: number;
}

export interface SweepResult {
  readonly fleets: readonly SweepFleet[];
  readonly cells: readonly SweepCell[];
  readonly wallSeconds: number;
}

const ratio = (a: number, b: number) => (b > 0 ? round(a / b, 3) : NaN);

/** Runs every cell of the sweep, one replay each, with progress per cell. */
export async function runReplicaSweep(root: string, o: SweepOptions, progress: Progress): Promise<SweepResult> {
  const started = performance.now();
  const policy = policyByName("ours");
  const plan = o.fleets.flatMap((workers, fi) =>
    o.replicas.flatMap((replicas) =>
      (replicas === 1 ? [null] : o.syncDelaysMs).map((syncDelayMs) => ({ fi, workers, replicas, syncDelayMs })),
    ),
  );
  const fleets: SweepFleet[] = o.fleets.map((workers, fi) => {
    const limit = o.limits[fi]!;
    const copies = workers / o.workersPerCopy;
    const requests = limit * copies;
    return { workers, limit, copies, requests, arrivalSeconds: 0, ratePerWorker: 0 };
  });
  const total = plan.reduce((a, c) => a + fleets[c.fi]!.requests, 0);
  let done = 0;
  const cells: SweepCell[] = [];
  const workloads = new Map<number, ReturnType<typeof tiledTraceWorkload>>();
  for (const [n, c] of plan.entries()) {
    let w = workloads.get(c.fi);
    if (!w) {
      workloads.clear();
      const f = fleets[c.fi]!;
      w = tiledTraceWorkload(loadTrace(root, o.trace, f.limit), f.copies, o.speedup);
      workloads.set(c.fi, w);
      const span = (w.requests[w.requests.length - 1]!.arrivalMs - w.requests[0]!.arrivalMs) / 1000;
      fleets[c.fi] = {
        ...f,
        requests: w.requests.length,
        arrivalSeconds: round(span, 2),
        ratePerWorker: round(w.requests.length / Math.max(span, 1e-9) / c.workers, 2),
      };
    }
    const phase = `${n + 1}/${plan.length} ${c.workers} workers, R=${c.replicas}${c.syncDelayMs === null ? "" : ` D=${c.syncDelayMs} ms`}`;
    const replay = await replayPolicy(
      w.requests,
      policy,
      { ...o.sim, workers: c.workers, replicas: c.replicas, syncDelayMs: c.syncDelayMs ?? 0 },
      (d) => progress.update(phase, done + d, total),
    );
    done += w.requests.length;
    const m = summarise(replay, o.speedup);
    const one = cells.find((x) => x.workers === c.workers && x.replicas === 1);
    const conflicts = replay.conflicts;
    cells.push({
      workers: c.workers,
      replicas: c.replicas,
      syncDelayMs: c.syncDelayMs,
      requests: m.requests,
      ttftMeanMs: m.ttftMeanMs,
      ttftP50Ms: m.ttftP50Ms,
      ttftP99Ms: m.ttftP99Ms,
      reuseRatio: m.reuseRatio,
      ttftMeanVsOne: one ? ratio(m.ttftMeanMs, one.ttftMeanMs) : 1,
      ttftP50VsOne: one ? ratio(m.ttftP50Ms, one.ttftP50Ms) : 1,
      ttftP99VsOne: one ? ratio(m.ttftP99Ms, one.ttftP99Ms) : 1,
      reuseVsOne: one ? ratio(m.reuseRatio, one.reuseRatio) : 1,
      conflictRate:
        c.replicas === 1
          ? 0
          : conflicts && conflicts.checked > 0
            ? round(conflicts.changed / conflicts.checked, 4)
            : null,
      wallSeconds: round(replay.wallMs / 1000, 1),
    });
    const last = cells[cells.length - 1]!;
    progress.note(
      `${phase}: TTFT mean ${last.ttftMeanMs} ms (×${last.ttftMeanVsOne}), p50 ${last.ttftP50Ms} ms (×${last.ttftP50VsOne}), p99 ${last.ttftP99Ms} ms, reuse ${round(100 * last.reuseRatio, 1)} %` +
        `${last.conflictRate === null ? "" : `, conflicts ${round(100 * last.conflictRate, 1)} %`}, ${last.wallSeconds} s`,
    );
  }
  return { fleets, cells, wallSeconds: round((performance.now() - started) / 1000, 1) };
}
