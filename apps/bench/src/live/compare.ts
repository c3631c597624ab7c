import { join, resolve } from "node:path";
import { loadTrace, type TraceRequest } from "../mooncake.js";
import { Children, stopOnSignal } from "./children.js";
import {
  startFleet,
  type EppReplica,
  type EventPlane,
  type Fleet,
  type FleetOptions,
  type RouterMode,
} from "./fleet.js";
import { scrape, summarise, sumOf, type RunSummary } from "./metrics.js";
import { conversationSlice, idealReuse, replaySlice, warmUp } from "./replay.js";

/** Everything a live comparison runs with. */
export interface LiveOptions {
  readonly root: string;
  readonly model: string;
  readonly workers: number;
  /** Conversations of the trace replayed (every turn of each). */
  readonly conversations: number;
  /** Requests per second sent to the gateway. */
  readonly rate: number;
  readonly speedupRatio: number;
  readonly maxOutputTokens: number;
  readonly eventPlane: EventPlane;
  readonly blockSize: number;
  readonly gpuBlocks: number;
  /** Mooncake trace (relative to the root unless absolute); default the shipped conversation trace. */
  readonly trace?: string;
  /** Endpoint picker replicas: more than 1 compares one picker with that many (`runReplicas`). */
  readonly eppReplicas?: number;
  /** Fraction of the replay after which one replica is killed (several replicas; undefined: no kill run). */
  readonly killReplicaAt?: number | undefined;
  /**
   * `--epp-cpu-prof <dir>`: V8 CPU profiles of the pickers, in a directory per run (`<dir>/<run>/epp-<replica>`),
   * written when each picker stops (none from a SIGKILLed one). Profiling slows the pickers: a measurement aid, not
   * a figure to compare.
   */
  readonly eppCpuProfileDir?: string | undefined;
  readonly note: (message: string) => void;
  readonly progress: (phase: string, done: number, total: number) => void;
}

/**
 * The offline simulator's figures for the same slice and settings, when a simulator is plugged in: `runLive` shows
 * them next to the live figures with `SIMULATOR_TOLERANCE`.
 */
export type SimulatorReplay = (
  slice: readonly TraceRequest[],
  options: LiveOptions,
  mode: RouterMode,
) => Promise<Pick<RunSummary, "ttftP50Ms" | "ttftP99Ms" | "reuseRatio" | "outputTokPerSec">>;

/** Relative gap allowed between simulated and live figures (TTFT and throughput; reuse within 0.1 absolute). */
export const SIMULATOR_TOLERANCE = { relative: 0.35, reuseAbsolute: 0.1 };

export interface LiveComparison {
  readonly slice: { readonly requests: number; readonly conversations: number; readonly idealReuse: number };
  readonly kv: RunSummary;
  readonly roundRobin: RunSummary;
  readonly simulated?: {
    readonly kv: Awaited<ReturnType<SimulatorReplay>>;
    readonly roundRobin: Awaited<ReturnType<SimulatorReplay>>;
  };
  /** Process ids started by both runs (all stopped when this resolves). */
  readonly pids: number[];
  readonly wallSeconds: number;
}

/**
 * The slice through one fleet: warm-up under one block, the slice at a fixed rate, the servers' metrics. `during`
 * runs beside the replay (started with it, awaited after it): the replica bench kills a picker there. The pickers'
 * CPU is summed over the pickers still running at the end.
 */
export async function measure(
  options: LiveOptions,
  slice: readonly TraceRequest[],
  mode: RouterMode,
  fleet: Fleet,
  label = mode === "kv" ? "KV-aware" : "round-robin",
  during?: () => Promise<void>,
): Promise<RunSummary> {
  const warmups = 2 * options.workers;
  options.note(`${label}: warming up the path (${warmups} requests under one KV block)`);
  await warmUp(fleet.gatewayUrl, options.model, warmups, 120_000);
  const cpuSeconds = async (replicas: readonly EppReplica[]) =>
    Promise.all(replicas.map(async (r) => sumOf(await scrape(r.metricsUrl), "process_cpu_seconds_total")));
  const cpuBefore = await cpuSeconds(fleet.replicas);
  const task = during?.();
  const samples = await replaySlice(slice, {
    baseUrl: fleet.gatewayUrl,
    model: options.model,
    rate: options.rate,
    maxOutputTokens: options.maxOutputTokens,
    timeoutMs: 120_000,
    onProgress: (done, total) => options.progress(`${label} replay`, done, total),
  });
  await task;
  await new Promise((r) => setTimeout(r, 200)); // the last decision-log lines
  const running = fleet.replicas.filter(
    (r) => r.process.child.exitCode === null && r.process.child.signalCode === null,
  );
  const cpuAfter = await cpuSeconds(running);
  const cpuUsed = running.reduce((total, r, i) => total + cpuAfter[i]! - cpuBefore[fleet.replicas.indexOf(r)]!, 0);
  const eppCpuMsPerRequest = Math.round((cpuUsed * 100_000) / slice.length) / 100;
  const [eppMetrics, ...workerMetrics] = await Promise.all([
    scrape(fleet.eppMetricsUrl),
    ...fleet.workers.map((w) => scrape(`${w.engineUrl}/metrics`)),
  ]);
  return {
    ...summarise(samples, {
      decisions: fleet.decisions().slice(warmups),
      workerIds: fleet.workers.map((w) => String(w.id)),
      workerMetrics,
      eppMetrics: eppMetrics!,
    }),
    eppCpuMsPerRequest,
  };
}

/**
 * The live comparison: the same trace slice through the endpoint picker in KV mode, then in round-robin mode, each
 * on processes of its own (cold caches), started after the previous ones stopped (starting both sets at once starves
 * them on a loaded 2-core machine). Everything is stopped on failure and on SIGINT / SIGTERM.
 */
export async function runLive(options: LiveOptions, simulator?: SimulatorReplay): Promise<LiveComparison> {
  const started = performance.now();
  const trace = loadTrace(options.root, options.trace);
  const slice = conversationSlice(trace, options.conversations);
  options.note(
    `trace slice: ${slice.length} requests of ${options.conversations} conversations, ${options.workers} workers, ${options.rate} requests/s`,
  );
  const groups = { kv: new Children(options.root), "round-robin": new Children(options.root) };
  const stopAll = () => Promise.all([groups.kv.stopAll(), groups["round-robin"].stopAll()]).then(() => undefined);
  const removeHandlers = stopOnSignal(stopAll);
  try {
    const kv = await measure(options, slice, "kv", await startFleet(fleetOptions(options, "kv", "kv"), groups.kv));
    await groups.kv.stopAll();
    const roundRobin = await measure(
      options,
      slice,
      "round-robin",
      await startFleet(fleetOptions(options, "round-robin", "round-robin"), groups["round-robin"]),
    );
    await groups["round-robin"].stopAll();
    const simulated =
      simulator === undefined
        ? undefined
        : { kv: await simulator(slice, options, "kv"), roundRobin: await simulator(slice, options, "round-robin") };
    return {
      slice: { requests: slice.length, conversations: options.conversations, idealReuse: idealReuse(slice) },
      kv,
      roundRobin,
      ...(simulated !== undefined ? { simulated } : {}),
      pids: [...groups.kv.startedPids(), ...groups["round-robin"].startedPids()],
      wallSeconds: (performance.now() - started) / 1000,
    };
  } finally {
    await stopAll();
    removeHandlers();
  }
}

/**
 * The processes of one run of a live comparison, from its options: `run` names the run, and its pickers write their
 * CPU profiles (`--epp-cpu-prof`) to a directory of that name.
 */
export function fleetOptions(options: LiveOptions, mode: RouterMode, run: string, eppReplicas = 1): FleetOptions {
  const dir = options.eppCpuProfileDir;
  return {
    root: options.root,
    model: options.model,
    workers: options.workers,
    mode,
    eventPlane: options.eventPlane,
    speedupRatio: options.speedupRatio,
    blockSize: options.blockSize,
    gpuBlocks: options.gpuBlocks,
    eppReplicas,
    eppCpuProfileDir:
      dir === undefined ? undefined : join(resolve(options.root, dir), run.replace(/[^A-Za-z0-9-]+/g, "-")),
    startTimeoutMs: 240_000,
    note: options.note,
  };
}
