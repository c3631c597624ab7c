import { loadavg } from "node:os";
import { markdownTable, round, type Bench } from "../framework.js";
import { loadTrace } from "../mooncake.js";
import { routingCharts } from "../routing/charts.js";
import { summarise, type PolicyMetrics } from "../routing/metrics.js";
import { parseRoutingOptions, type RoutingOptions } from "../routing/options.js";
import { replayPolicy, type ReplayResult } from "../routing/replay.js";
import { REUSE_TARGET_RATIO, verdict, type Verdict } from "../routing/verdict.js";
import {
  MULTI_TURN_DEFAULTS,
  SHARED_PREFIX_DEFAULTS,
  multiTurnWorkload,
  sharedPrefixWorkload,
  traceWorkload,
  type Workload,
} from "../routing/workloads.js";

/**
 * Routing quality in virtual time: every policy over the same workload and simulated engines, at
 * several arrival speedups, the router deciding through `RouterService` (the endpoint picker's code).
 */

function workloadAt(o: RoutingOptions, speedup: number, trace: ReturnType<typeof loadTrace>): Workload {
  if (o.workload === "shared-prefix") return sharedPrefixWorkload(SHARED_PREFIX_DEFAULTS, speedup);
  if (o.workload === "multi-turn") return multiTurnWorkload(MULTI_TURN_DEFAULTS, speedup);
  return traceWorkload(trace, speedup);
}

const pct = (v: number) => `${round(100 * v, 1)}%`;

function resultsTable(results: readonly PolicyMetrics[]): string {
  return markdownTable(
    [
      "load",
      "policy",
      "TTFT mean / p50 / p90 / p99 (ms)",
      "ITL mean (ms)",
      "TPOT p50 / p99 (ms)",
      "e2e mean / p99 (s)",
      "output tok/s",
      "req/s",
      "prefix reuse",
      "imbalance",
      "decision p50 / p99 (µs)",
    ],
    results.map((r) => [
      `×${r.load}`,
      r.policy,
      `${r.ttftMeanMs} / ${r.ttftP50Ms} / ${r.ttftP90Ms} / ${r.ttftP99Ms}`,
      r.itlMeanMs,
      `${r.tpotP50Ms} / ${r.tpotP99Ms}`,
      `${round(r.e2eMeanMs / 1000, 2)} / ${round(r.e2eP99Ms / 1000, 2)}`,
      r.outputTokPerSec,
      r.requestsPerSec,
      pct(r.reuseRatio),
      r.loadImbalance,
      r.decisionP50Us === null ? "—" : `${r.decisionP50Us} / ${r.decisionP99Us}`,
    ]),
  );
}

function verdictText(v: Verdict, results: readonly PolicyMetrics[]): string {
  const at = (p: string) => results.find((r) => r.policy === p && r.load === v.load);
  const ours = at("ours");
  const yes = (b: boolean) => (b ? "met" : "**not met**");
  const lines = [
    `Targets at arrival speedup ×${v.load} (${v.crossed ? "the first swept load where round-robin's TTFT p50 exceeds 1 s" : "round-robin's TTFT p50 never exceeded 1 s; the highest load swept"}):`,
    "",
    `- ours TTFT p50 ≤ 1/3 of round-robin's: ${ours?.ttftP50Ms} vs ${at("round-robin")?.ttftP50Ms} ms, ratio ${v.oursVsRoundRobinTtftP50} — ${yes(v.targets["ttftP50AtMostThirdOfRoundRobin"]!)}`,
  ];
  for (const name of ["gaie-default", "llm-d-precise"]) {
    const b = v.beats[name];
    const o = at(name);
    if (!b || !o || !ours) continue;
    lines.push(
      `- ours better than ${name} on TTFT p50 (${ours.ttftP50Ms} vs ${o.ttftP50Ms} ms: ${b.ttftP50 ? "yes" : "no"}), ` +
        `p99 (${ours.ttftP99Ms} vs ${o.ttftP99Ms} ms: ${b.ttftP99 ? "yes" : "no"}) and output tokens/s ` +
        `(${ours.outputTokPerSec} vs ${o.outputTokPerSec}: ${b.outputTokPerSec ? "yes" : "no"}) — ${yes(b.ttftP50 && b.ttftP99 && b.outputTokPerSec)}`,
    );
  }
  lines.push(
    `- prefix reuse ≥ ${REUSE_TARGET_RATIO * 100} % of the pooled-cache bound: ${pct(ours?.reuseRatio ?? NaN)} vs ${pct(at("pooled")?.reuseRatio ?? NaN)}, ratio ${v.oursReuseVsUpperBound} — ${yes(v.targets["reuseAtLeast90PercentOfUpperBound"]!)}`,
  );
  return lines.join("\n");
}

/** What the section tells a reader about the figures, true whatever they are. */
const READING =
  "How to read it. `pooled` is one engine with all the workers' cache and compute: no router can reuse more. " +
  "`ours` and `dynamo-classic` score with the same cost under default settings (the 2025 form equals the current one when " +
  "host and disk tiers are empty), so they differ only in tie-breaks. That cost counts one uncached prompt block and one " +
  "block held by a running request alike: a worker holding a request's prefix wins only while its extra in-flight blocks " +
  "are fewer than the blocks it would save, so at any load ours gives up affinity to balance in-flight blocks. It keeps " +
  "the TTFT tail and the imbalance low, and leaves reuse (and the throughput a smaller prefill bill would bring) to the " +
  "baselines that weigh prefix matches more (GAIE's prefix weight 3 of 7, llm-d's 2 of 3). At light load rotation can " +
  "beat every affinity policy on TTFT p50 (requests with a shared prefix queue behind each other on one worker), as " +
  "published for some shared-prefix shapes; near saturation the gain over rotation comes from reused prefill, not from " +
  "shed load (nothing is rejected here: every policy completes every request)." +
  " `--policies ours,ours-credit-2,pooled` measures how much of the reuse gap a larger overlap credit (not the default) closes." +
  " The effect is strongest on `--workload shared-prefix` (64-token blocks: a 6 000-token system prompt fills 93, a whole prompt 112): a worker holding the group's prefix loses to an idle one as soon as it runs one other request, whose 112 active blocks outweigh the 93 it would save, so there ours reuses far less than GAIE and llm-d and loses to them on TTFT p50.";

export const bench: Bench = {
  name: "routing",
  description:
    "Routing quality in virtual time: every policy over the same requests and simulated engines (`@dynamo/engine-sim`), " +
    "the router deciding through `RouterService` (the endpoint picker's code; engine KV events delivered after `--event-delay-ms`), " +
    "baselines as pickers of `@dynamo/scheduling`, at several arrival speedups. Options: `--workload trace|shared-prefix|multi-turn " +
    "--trace <jsonl> --limit 1500 --arrival-speedup 4,6,8 --policies ours,round-robin,... --workers 8 --block-size 64 " +
    "--num-gpu-blocks 16384 --event-delay-ms 5 --scrape-interval-ms 50 --sample-interval-ms 1000 --seed 1 " +
    "--replicas 1 --sync-delay-ms 5 --tie-band 0` (several routers, requests in turn, sharing their bookings after the sync delay; the replicas' `DYN_ROUTER_REPLICA_TIE_BAND`).",
  async run(ctx) {
    const o = parseRoutingOptions(ctx.args);
    const started = performance.now();
    const trace = o.workload === "trace" ? loadTrace(ctx.root, o.trace, o.limit) : [];
    const workloads = o.speedups.map((s) => workloadAt(o, s, trace));
    const perRun = workloads[0]!.requests.length;
    const total = perRun * o.speedups.length * o.policies.length;
    let done = 0;
    const results: PolicyMetrics[] = [];
    const replays = new Map<string, ReplayResult>();
    for (const [li, load] of o.speedups.entries()) {
      for (const policy of o.policies) {
        const phase = `×${load} ${policy.name}`;
        const replay = await replayPolicy(workloads[li]!.requests, policy, o.sim, (d) =>
          ctx.progress.update(phase, done + d, total),
        );
        done += perRun;
        replays.set(`${policy.name}@${load}`, replay);
        results.push(summarise(replay, load));
      }
    }
    const wallSeconds = round((performance.now() - started) / 1000, 1);
    const v = verdict(results, o.speedups);
    const table = resultsTable(results);
    if (!ctx.json) console.log(`\n${table}\n\n${verdictText(v, results)}\n`);
    const w = workloads[0]!;
    const figures = {
      workload: o.workload === "trace" ? `${o.trace} (first ${perRun} requests)` : w.description,
      workers: o.sim.workers,
      replicas: o.sim.replicas,
      arrivalSpeedups: [...o.speedups],
      targetLoad: v.load,
      oursVsRoundRobinTtftP50: v.oursVsRoundRobinTtftP50,
      oursReuseVsUpperBound: v.oursReuseVsUpperBound,
      targets: v.targets,
      beats: v.beats,
      results: results.map((r) => ({ ...r })),
      wallSeconds,
      loadAverage1m: round(loadavg()[0]!, 2),
    };
    const policyList = o.policies.map((p) => `- \`${p.name}\`: ${p.description}`).join("\n");
    const markdown =
      `Workload: ${figures.workload}; ${o.sim.workers} workers of ${o.sim.numGpuBlocks.toLocaleString("en-US")} KV blocks × ${o.sim.blockSize} tokens ` +
      `(Dynamo mocker timing), KV events to the router after ${o.sim.eventDelayMs} ms, scraped metrics every ${o.sim.scrapeIntervalMs} ms` +
      (o.sim.replicas > 1 ? `, ${o.sim.replicas} router replicas sharing bookings after ${o.sim.syncDelayMs} ms` : "") +
      ". " +
      `The whole run (${o.policies.length} policies × ${o.speedups.length} loads) took ${wallSeconds} s of wall time ` +
      `(1-minute load average ${figures.loadAverage1m}).\n\n${policyList}\n\n${table}\n\n${verdictText(v, results)}\n\n${READING}\n`;
    const charts = routingCharts(results, replays, o.speedups, v.load);
    return { figures, markdown, charts };
  },
};
