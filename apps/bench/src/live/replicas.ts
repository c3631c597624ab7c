import { loadTrace, type TraceRequest } from "../mooncake.js";
import { Children, stopOnSignal } from "./children.js";
import { fleetOptions, measure, type LiveOptions } from "./compare.js";
import { startFleet, type Fleet } from "./fleet.js";
import { scrape, sumOf, type RunSummary } from "./metrics.js";
import { conversationSlice, idealReuse } from "./replay.js";

/** Decision counters of the replicas (`null`: a replica does not export them). */
export interface ConflictFigures {
  /** Decisions re-scored once the peers' bookings arrived, summed over replicas. */
  readonly rechecked: number | null;
  /** Re-scored decisions that would have gone elsewhere, summed over replicas. */
  readonly conflicts: number | null;
}

/** What killing one replica (SIGKILL) in the middle of a replay cost. */
export interface KillFigures {
  /** Fraction of the replay's sending time after which the replica was killed. */
  readonly atFraction: number;
  readonly requests: number;
  readonly failed: number;
  readonly errors: Record<string, number>;
  /** ext_proc streams open on the killed replica just before the kill (`dynamo_epp_streams_inflight`). */
  readonly inflightOnKilled: number;
  /** Responses the gateway reset or answered 500 because the killed replica carried them. */
  readonly abortedOnKilled: number;
  /** Requests whose stream to the killed replica failed before it answered, sent again to a survivor. */
  readonly resent: number;
  /** Bookings of the other replicas in each survivor's load view just before the kill. */
  readonly peerBookingsAtKill: number[];
  /** Kill to the moment every survivor had dropped the killed replica and its bookings (null: not within 60 s). */
  readonly bookingsGoneMs: number | null;
  /** Bookings each survivor dropped when the killed replica's lease ran out. */
  readonly expiredBookings: number[];
  readonly summary: RunSummary;
}

export interface ReplicaComparison {
  readonly slice: { readonly requests: number; readonly conversations: number; readonly idealReuse: number };
  readonly replicas: number;
  readonly one: RunSummary;
  readonly many: RunSummary;
  /** One picker again after the replicas: how far two runs of the same set-up differ on this machine. */
  readonly oneAgain: RunSummary;
  readonly conflicts: ConflictFigures;
  readonly kill?: KillFigures;
  /** Process ids started by every run (all stopped when this resolves). */
  readonly pids: number[];
  readonly wallSeconds: number;
}

const RECHECKED = "dynamo_epp_replica_decisions_rechecked_total";
const CONFLICTS = "dynamo_epp_replica_decision_conflicts_total";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const exported = (metrics: Map<string, number>, name: string) =>
  [...metrics.keys()].some((key) => key === name || key.startsWith(`${name}{`));

/** The replicas' decision-conflict counters, summed; `null` when any replica does not export one. */
async function conflictsOf(fleet: Fleet): Promise<ConflictFigures> {
  const metrics = await Promise.all(fleet.replicas.map((r) => scrape(r.metricsUrl)));
  const total = (name: string) =>
    metrics.every((m) => exported(m, name)) ? metrics.reduce((a, m) => a + sumOf(m, name), 0) : null;
  return { rechecked: total(RECHECKED), conflicts: total(CONFLICTS) };
}

/**
 * The slice through several replicas while the last one is SIGKILLed after `atFraction` of the sending time (at
 * the first moment after it that the replica carries a stream, within 2 s); the
 * survivors' `/metrics` polled every 100 ms until the killed replica's lease ran out in each.
 */
async function killRun(
  options: LiveOptions,
  slice: readonly TraceRequest[],
  fleet: Fleet,
  atFraction: number,
): Promise<KillFigures> {
  const label = `${fleet.replicas.length} replicas, one killed`;
  const victim = fleet.replicas.at(-1)!;
  const survivors = fleet.replicas.slice(0, -1);
  const peersBefore = fleet.replicas.length - 1;
  const killAfterMs = (atFraction * slice.length * 1000) / options.rate;
  let inflightOnKilled = 0;
  let peerBookingsAtKill: number[] = [];
  let expiredBefore: number[] = [];
  let bookingsGoneMs: number | null = null;
  let expiredBookings: number[] = [];
  const kill = async () => {
    await sleep(killAfterMs);
    // The kill lands while the replica carries a stream when one comes within 2 s (a kill between requests
    // would show nothing of what a crash costs).
    const carrying = performance.now() + 2_000;
    let victimMetrics = await scrape(victim.metricsUrl);
    while (sumOf(victimMetrics, "dynamo_epp_streams_inflight") === 0 && performance.now() < carrying) {
      await sleep(10);
      victimMetrics = await scrape(victim.metricsUrl);
    }
    const before = await Promise.all(survivors.map((r) => scrape(r.metricsUrl)));
    inflightOnKilled = sumOf(victimMetrics, "dynamo_epp_streams_inflight");
    peerBookingsAtKill = before.map((m) => sumOf(m, "dynamo_epp_replica_peer_bookings"));
    expiredBefore = before.map((m) => sumOf(m, "dynamo_epp_replica_expired_bookings"));
    victim.process.child.kill("SIGKILL");
    const killedAt = performance.now();
    options.note(
      `${label}: SIGKILL to the replica at ${victim.target} (${inflightOnKilled} streams open on it); polling the survivors for its bookings`,
    );
    while (performance.now() - killedAt < 60_000) {
      const now = await Promise.all(survivors.map((r) => scrape(r.metricsUrl)));
      if (now.every((m) => sumOf(m, "dynamo_epp_replica_peers") < peersBefore)) {
        bookingsGoneMs = performance.now() - killedAt;
        expiredBookings = now.map((m, i) => sumOf(m, "dynamo_epp_replica_expired_bookings") - expiredBefore[i]!);
        return;
      }
      await sleep(100);
    }
  };
  const summary = await measure(options, slice, "kv", fleet, label, kill);
  const lines = fleet.gatewayLines();
  return {
    atFraction,
    requests: summary.requests,
    failed: summary.requests - summary.succeeded,
    errors: summary.errors,
    inflightOnKilled,
    abortedOnKilled: lines.filter(
      (l) => l.includes(`response aborted via ${victim.target}`) || l.includes(`ext_proc failed via ${victim.target}`),
    ).length,
    resent: lines.filter((l) => l.includes(`endpoint picker ${victim.target} failed before answering`)).length,
    peerBookingsAtKill,
    bookingsGoneMs,
    expiredBookings,
    summary,
  };
}

/**
 * One endpoint picker against `eppReplicas` replicas sharing bookings over NATS, on the same trace slice and load,
 * fresh processes (cold caches) for each run, the dev gateway spreading streams over the replicas; one picker again
 * (the run-to-run spread of the same set-up, against which a replica gap can be read); then, with
 * `killReplicaAt`, another run of the replicas where one is SIGKILLed mid-replay. Everything is stopped at the end,
 * on failure and on SIGINT / SIGTERM.
 */
export async function runReplicas(options: LiveOptions): Promise<ReplicaComparison> {
  const started = performance.now();
  const replicas = options.eppReplicas ?? 1;
  if (replicas < 2) throw new Error("the replica comparison needs --epp-replicas 2 or more");
  const trace = loadTrace(options.root, options.trace);
  const slice = conversationSlice(trace, options.conversations);
  options.note(
    `trace slice: ${slice.length} requests of ${options.conversations} conversations, ${options.workers} workers, ${options.rate} requests/s; 1 EPP against ${replicas} replicas`,
  );
  const groups = [
    new Children(options.root),
    new Children(options.root),
    new Children(options.root),
    new Children(options.root),
  ] as const;
  const stopAll = () => Promise.all(groups.map((g) => g.stopAll())).then(() => undefined);
  const removeHandlers = stopOnSignal(stopAll);
  try {
    const one = await measure(
      options,
      slice,
      "kv",
      await startFleet(fleetOptions(options, "kv", "1-epp"), groups[0]),
      "1 EPP",
    );
    await groups[0].stopAll();
    const fleet = await startFleet(fleetOptions(options, "kv", `${replicas}-replicas`, replicas), groups[1]);
    const many = await measure(options, slice, "kv", fleet, `${replicas} EPP replicas`);
    const conflicts = await conflictsOf(fleet);
    await groups[1].stopAll();
    const oneAgain = await measure(
      options,
      slice,
      "kv",
      await startFleet(fleetOptions(options, "kv", "1-epp-again"), groups[3]),
      "1 EPP again",
    );
    await groups[3].stopAll();
    let kill: KillFigures | undefined;
    if (options.killReplicaAt !== undefined) {
      kill = await killRun(
        options,
        slice,
        await startFleet(fleetOptions(options, "kv", `${replicas}-replicas-kill`, replicas), groups[2]),
        options.killReplicaAt,
      );
      await groups[2].stopAll();
    }
    return {
      slice: { requests: slice.length, conversations: options.conversations, idealReuse: idealReuse(slice) },
      replicas,
      one,
      many,
      oneAgain,
      conflicts,
      ...(kill !== undefined && { kill }),
      pids: groups.flatMap((g) => g.startedPids()),
      wallSeconds: (performance.now() - started) / 1000,
    };
  } finally {
    await stopAll();
    removeHandlers();
  }
}
