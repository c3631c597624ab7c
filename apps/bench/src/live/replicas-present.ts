import { cdfPoints, markdownTable, round, type BenchResult, type Chart } from "../framework.js";
import type { LiveOptions } from "./compare.js";
import type { RunSummary } from "./metrics.js";
import type { ReplicaComparison } from "./replicas.js";

/** Relative gap allowed between one replica's and several replicas' TTFT and reuse. */
export const REPLICA_TOLERANCE = 0.05;
/** The replicas' default lease (`@dynamo/replica-sync`): a killed replica's bookings must be gone within it. */
export const REPLICA_LEASE_MS = 10_000;

const ratio = (a: number, b: number) => (b === 0 ? NaN : round(a / b, 3));
const pct = (x: number) => `${round(x * 100, 1)} %`;
const within = (many: number, one: number) =>
  Math.abs(many - one) <= REPLICA_TOLERANCE * Math.abs(one) ? "within 5 %" : "outside 5 %";

function conflictText(c: ReplicaComparison): string {
  const { rechecked, conflicts } = c.conflicts;
  if (rechecked === null || conflicts === null) return "n/a (the replicas export no decision-conflict counters)";
  const rate = rechecked === 0 ? "n/a" : pct(conflicts / rechecked);
  return `${rate} (${conflicts} of ${rechecked} re-scored decisions would have gone elsewhere)`;
}

/** Columns: figure, 1 EPP, N replicas, N / 1, 1 EPP again / 1 EPP (the run-to-run spread), target. */
function rows(c: ReplicaComparison): Array<Array<string | number>> {
  const { one, many, oneAgain } = c;
  const row = (name: string, pick: (run: RunSummary) => number, check: boolean) => [
    name,
    pick(one),
    pick(many),
    ratio(pick(many), pick(one)),
    ratio(pick(oneAgain), pick(one)),
    check ? within(pick(many), pick(one)) : "",
  ];
  const text = (name: string, show: (run: RunSummary) => string) => [
    name,
    show(one),
    show(many),
    "",
    show(oneAgain),
    "",
  ];
  return [
    row("TTFT p50 ms", (r) => r.ttftP50Ms, true),
    row("TTFT p99 ms", (r) => r.ttftP99Ms, true),
    row("TTFT mean ms", (r) => r.ttftMeanMs, false),
    row("e2e p50 ms", (r) => r.e2eP50Ms, false),
    row("output tokens/s", (r) => r.outputTokPerSec, false),
    [
      "prefix reuse (responses)",
      pct(one.reuseRatio),
      pct(many.reuseRatio),
      ratio(many.reuseRatio, one.reuseRatio),
      ratio(oneAgain.reuseRatio, one.reuseRatio),
      within(many.reuseRatio, one.reuseRatio),
    ],
    text("prefix reuse (workers' counters)", (r) => pct(r.workerReuseRatio)),
    text("requests per worker", (r) => r.perWorker.join(" / ")),
    text("succeeded", (r) => `${r.succeeded}/${r.requests}`),
    text("picker decision p50 / p99 ms", (r) => `${r.eppDecisionP50Ms} / ${r.eppDecisionP99Ms}`),
    text("pickers' CPU ms per request (all replicas)", (r) => String(r.eppCpuMsPerRequest ?? "n/a")),
  ];
}

function killRows(c: ReplicaComparison): Array<Array<string | number>> {
  const k = c.kill!;
  const gone = k.bookingsGoneMs === null ? "not within 60 s" : `${round(k.bookingsGoneMs / 1000, 2)} s`;
  return [
    ["killed (SIGKILL) after", `${pct(k.atFraction)} of the replay, while it carried a stream`],
    ["requests", k.requests],
    ["failed", k.failed],
    ["streams open on the killed replica at the kill", k.inflightOnKilled],
    ["responses the gateway reset or failed (their replica died)", k.abortedOnKilled],
    ["requests re-sent to a survivor (stream failed before an answer)", k.resent],
    ["failures beyond those in flight on it", Math.max(0, k.failed - k.inflightOnKilled)],
    ["peer bookings in the survivors' views at the kill", k.peerBookingsAtKill.join(" / ")],
    [`killed replica and its bookings gone from every survivor (lease ${REPLICA_LEASE_MS / 1000} s)`, gone],
    ["its bookings dropped at lease expiry, per survivor", k.expiredBookings.join(" / ")],
    ["TTFT p50 / p99 ms", `${k.summary.ttftP50Ms} / ${k.summary.ttftP99Ms}`],
  ];
}

function summaryLine(c: ReplicaComparison): string {
  const { one, many, oneAgain, replicas } = c;
  const figures = [
    { name: "TTFT p50", many: many.ttftP50Ms, one: one.ttftP50Ms, again: oneAgain.ttftP50Ms },
    { name: "TTFT p99", many: many.ttftP99Ms, one: one.ttftP99Ms, again: oneAgain.ttftP99Ms },
    { name: "reuse", many: many.reuseRatio, one: one.reuseRatio, again: oneAgain.reuseRatio },
  ];
  const outside = figures.filter((f) => within(f.many, f.one) !== "within 5 %");
  const spread = `one picker run twice differs by ×${ratio(oneAgain.ttftP50Ms, one.ttftP50Ms)} in TTFT p50 and ×${ratio(oneAgain.ttftP99Ms, one.ttftP99Ms)} in p99`;
  if (outside.length === 0)
    return `With ${replicas} replicas sharing their bookings, TTFT p50 / p99 and reuse stayed within 5 % of one picker's (${spread}).`;
  // A gap is read against the spread of the same set-up run twice: beyond it, it is the replicas' cost here.
  const readings = outside.map((f) => {
    const gap = Math.abs(f.many / f.one - 1);
    const noise = Math.abs(f.again / f.one - 1);
    return `${f.name} ×${ratio(f.many, f.one)} (${gap > noise ? "beyond" : "within"} that spread)`;
  });
  return `With ${replicas} replicas, outside 5 % of one picker's: ${readings.join(", ")}; ${spread} on ${one.requests} requests.`;
}

/** The comparison as terminal lines. */
export function replicaLines(c: ReplicaComparison): string[] {
  const cell = (v: string | number, width: number) => String(v).padStart(width);
  const lines = [
    `  ${"".padEnd(34)}${cell("1 EPP", 18)}${cell(`${c.replicas} replicas`, 18)}${cell("ratio", 9)}${cell("1 again", 18)}${cell("", 13)}`,
    ...rows(c).map(
      ([name, a, b, r, again, w]) =>
        `  ${String(name).padEnd(34)}${cell(a!, 18)}${cell(b!, 18)}${cell(r!, 9)}${cell(again!, 18)}${cell(w!, 13)}`,
    ),
    `  decision-conflict rate: ${conflictText(c)}`,
    `  ${summaryLine(c)}`,
  ];
  for (const [name, run] of [
    ["1 EPP", c.one],
    [`${c.replicas} replicas`, c.many],
    ["1 EPP again", c.oneAgain],
  ] as const)
    for (const [error, count] of Object.entries(run.errors)) lines.push(`  ${name} error ×${count}: ${error}`);
  if (c.kill !== undefined) {
    lines.push(`  one of ${c.replicas} replicas killed mid-run:`);
    for (const [name, value] of killRows(c)) lines.push(`    ${String(name).padEnd(72)}${value}`);
    for (const [error, count] of Object.entries(c.kill.errors)) lines.push(`    error ×${count}: ${error}`);
  }
  return lines;
}

/** Figures, markdown and charts of the replica comparison, in its own subsection of the live section. */
export function replicaResult(c: ReplicaComparison, options: LiveOptions): BenchResult {
  const { one, many } = c;
  const k = c.kill;
  const killMarkdown =
    k === undefined
      ? "No replica was killed (`--kill-replica-at off`)."
      : [
          `A third run starts ${c.replicas} fresh replicas and sends SIGKILL to one of them after ${pct(k.atFraction)} of the replay (at the first moment after it that the replica carries a stream, within 2 s); the gateway health-checks each replica every 200 ms.`,
          "",
          markdownTable(["killed replica", ""], killRows(c)),
          "",
          k.failed <= k.inflightOnKilled
            ? `Zero failures beyond the requests in flight on the killed replica (failed: ${k.failed}; streams open on it: ${k.inflightOnKilled}).`
            : `${k.failed - k.inflightOnKilled} failures beyond the ${k.inflightOnKilled} requests in flight on the killed replica.`,
        ].join("\n");
  const markdown = [
    `\`npm run bench -- live --epp-replicas ${c.replicas}\`: the same ${c.slice.requests} requests (${c.slice.conversations} conversations of the Mooncake conversation trace) at ${options.rate} requests/s through the dev gateway, ${options.workers} mocker workers (speedup ×${options.speedupRatio}, block size ${options.blockSize}), KV-aware routing, once through one endpoint picker and once through ${c.replicas} replicas sharing their bookings over NATS (\`DYN_ROUTER_REPLICA_SYNC=true\`, a nats-server started for the run), the gateway spreading streams round-robin over the healthy replicas, then once more through one picker: the ratio of the two one-picker runs is the run-to-run spread of the same set-up on this machine. Fresh processes (cold caches) for each run; every replica decision audited (\`DYN_ROUTER_REPLICA_AUDIT_EVERY=1\`).`,
    "",
    markdownTable(
      ["", "1 EPP", `${c.replicas} replicas`, `${c.replicas} / 1`, "1 EPP again / 1 (spread)", "target"],
      rows(c),
    ),
    "",
    summaryLine(c),
    "",
    `Decision-conflict rate (\`dynamo_epp_replica_decision_conflicts_total\` / \`dynamo_epp_replica_decisions_rechecked_total\`, summed over the replicas): ${conflictText(c)}.`,
    "",
    killMarkdown,
    "",
    "- **Pickers' CPU**: `process_cpu_seconds_total` of every picker process over the replay, per request. Each replica consumes every worker's KV events into an index of its own and answers its peers' booking changes and heartbeats, whether or not it routes; here all of them share the machine's two cores with the workers, the sidecars, the gateway and the client, so that extra CPU shows up as TTFT. On a cluster each replica runs on cores of its own.",
    "- **In flight on the killed replica**: its open ext_proc streams (`dynamo_epp_streams_inflight`) read just before the kill. The gateway resets a response whose picker dies (ext_proc fails closed); a request whose stream fails before the picker answered reached no worker and is re-sent to a survivor.",
    "- **Bookings gone**: from the kill until every survivor's `dynamo_epp_replica_peers` dropped the killed replica (its bookings leave with it), polling the survivors' `/metrics` every 100 ms. A survivor checks its peers' leases at each of its 1 s heartbeats, so a replica last heard just before its death goes between 10 and 11 s later.",
  ].join("\n");
  const charts: Chart[] = [
    {
      kind: "line",
      title: "Time to first token (CDF): one picker against several replicas",
      xLabel: "ms",
      yLabel: "fraction of requests",
      series: [
        { name: "1 EPP", points: cdfPoints(one.ttftSorted, 50) },
        { name: `${c.replicas} replicas`, points: cdfPoints(many.ttftSorted, 50) },
        { name: "1 EPP again", points: cdfPoints(c.oneAgain.ttftSorted, 50) },
        ...(k !== undefined
          ? [{ name: `${c.replicas} replicas, one killed`, points: cdfPoints(k.summary.ttftSorted, 50) }]
          : []),
      ],
    },
  ];
  const strip = (run: RunSummary) => {
    const { ttftSorted, errors, ...rest } = run;
    void ttftSorted;
    return { ...rest, errors: { ...errors } };
  };
  return {
    figures: {
      requests: c.slice.requests,
      replicas: c.replicas,
      one: strip(one),
      many: strip(many),
      oneAgain: strip(c.oneAgain),
      ttftP50Spread: ratio(c.oneAgain.ttftP50Ms, one.ttftP50Ms),
      ttftP99Spread: ratio(c.oneAgain.ttftP99Ms, one.ttftP99Ms),
      ttftP50Ratio: ratio(many.ttftP50Ms, one.ttftP50Ms),
      ttftP99Ratio: ratio(many.ttftP99Ms, one.ttftP99Ms),
      reuseRatio: ratio(many.reuseRatio, one.reuseRatio),
      decisionsRechecked: c.conflicts.rechecked,
      decisionConflicts: c.conflicts.conflicts,
      ...(k !== undefined && {
        kill: {
          atFraction: k.atFraction,
          requests: k.requests,
          failed: k.failed,
          inflightOnKilled: k.inflightOnKilled,
          abortedOnKilled: k.abortedOnKilled,
          resent: k.resent,
          peerBookingsAtKill: k.peerBookingsAtKill,
          bookingsGoneMs: k.bookingsGoneMs === null ? null : round(k.bookingsGoneMs, 0),
          expiredBookings: k.expiredBookings,
          errors: { ...k.errors },
          ttftP50Ms: k.summary.ttftP50Ms,
          ttftP99Ms: k.summary.ttftP99Ms,
        },
      }),
      wallSeconds: round(c.wallSeconds, 1),
    },
    markdown,
    charts,
    docsSection: {
      name: "live-replicas",
      title: `live: ${c.replicas} endpoint picker replicas against one`,
      after: "live",
    },
  };
}
