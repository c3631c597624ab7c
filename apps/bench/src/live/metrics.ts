import { percentile, round } from "../framework.js";
import type { Decision } from "./fleet.js";
import type { RequestSample } from "./replay.js";

/** The figures of one live run. */
export interface RunSummary {
  readonly requests: number;
  readonly succeeded: number;
  /** Fraction of requests that succeeded. */
  readonly successRate: number;
  /** The distinct errors and how often each happened. */
  readonly errors: Record<string, number>;
  readonly ttftMeanMs: number;
  readonly ttftP50Ms: number;
  readonly ttftP99Ms: number;
  /** Mean inter-token latency over requests (each request's mean gap). */
  readonly itlMeanMs: number;
  readonly e2eP50Ms: number;
  readonly e2eP99Ms: number;
  /** Σ output tokens / wall time of the replay (first send to last answer). */
  readonly outputTokPerSec: number;
  readonly requestsPerSec: number;
  /** Σ cached / Σ prompt tokens, from the responses' `usage.prompt_tokens_details.cached_tokens`. */
  readonly reuseRatio: number;
  /** The same from the workers' own counters (`vllm:prefix_cache_hits` / `_queries`). */
  readonly workerReuseRatio: number;
  /** Requests each worker served (decision log), in worker order. */
  readonly perWorker: number[];
  /** The picker's decision time (body received to decision, tokenization included), from its decision log. */
  readonly eppDecisionP50Ms: number;
  readonly eppDecisionP99Ms: number;
  /** Mean selection phase (index lookup, scoring, booking) from the picker's `/metrics`. */
  readonly eppSelectionMeanMs: number;
  /** TTFT of every successful request, sorted (for CDF plots). */
  readonly ttftSorted: number[];
  /**
   * CPU time of every picker process during the replay (`process_cpu_seconds_total`, summed over replicas) per
   * request, when measured.
   */
  readonly eppCpuMsPerRequest?: number;
}

/** Prometheus text exposition → sample name with labels → value. */
export function parsePrometheus(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue;
    const at = line.lastIndexOf(" ");
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

/** Σ of every sample whose name (before any labels) is `name`. */
export function sumOf(metrics: Map<string, number>, name: string, labelFilter = ""): number {
  let sum = 0;
  for (const [key, value] of metrics) {
    const bare = key.includes("{") ? key.slice(0, key.indexOf("{")) : key;
    if (bare === name && key.includes(labelFilter) && Number.isFinite(value)) sum += value;
  }
  return sum;
}

export async function scrape(url: string): Promise<Map<string, number>> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return parsePrometheus(await response.text());
}

const sorted = (values: number[]) => values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
const mean = (values: number[]) => (values.length === 0 ? NaN : values.reduce((a, b) => a + b, 0) / values.length);

/** What the workers' and the picker's metrics add to the client's samples. */
export interface ServerFigures {
  readonly decisions: readonly Decision[];
  /** Worker ids in decimal, as the decision log prints them. */
  readonly workerIds: readonly string[];
  /** The mockers' `/metrics`, one per worker. */
  readonly workerMetrics: ReadonlyArray<Map<string, number>>;
  /** The picker's `/metrics`. */
  readonly eppMetrics: Map<string, number>;
}

export function summarise(samples: readonly RequestSample[], server: ServerFigures): RunSummary {
  const ok = samples.filter((s) => s.ok);
  const errors: Record<string, number> = {};
  for (const s of samples) if (!s.ok) errors[s.error!] = (errors[s.error!] ?? 0) + 1;
  const ttft = sorted(ok.map((s) => s.ttftMs));
  const e2e = sorted(ok.map((s) => s.e2eMs));
  const start = Math.min(...samples.map((s) => s.sentMs));
  const end = Math.max(...samples.map((s) => s.sentMs + s.e2eMs));
  const wallSec = (end - start) / 1000;
  const prompt = ok.reduce((a, s) => a + s.promptTokens, 0);
  const cached = ok.reduce((a, s) => a + s.cachedTokens, 0);
  const hits = server.workerMetrics.reduce((a, m) => a + sumOf(m, "vllm:prefix_cache_hits_total"), 0);
  const queries = server.workerMetrics.reduce((a, m) => a + sumOf(m, "vllm:prefix_cache_queries_total"), 0);
  const decisionMs = sorted(server.decisions.map((d) => d.decisionMs));
  const selectSum = sumOf(server.eppMetrics, "dynamo_epp_phase_duration_seconds_sum", 'phase="selection"');
  const selectCount = sumOf(server.eppMetrics, "dynamo_epp_phase_duration_seconds_count", 'phase="selection"');
  return {
    requests: samples.length,
    succeeded: ok.length,
    successRate: round(ok.length / Math.max(1, samples.length), 4),
    errors,
    ttftMeanMs: round(mean(ttft), 1),
    ttftP50Ms: round(percentile(ttft, 50), 1),
    ttftP99Ms: round(percentile(ttft, 99), 1),
    itlMeanMs: round(mean(ok.filter((s) => s.outputTokens > 1).map((s) => s.itlMs)), 2),
    e2eP50Ms: round(percentile(e2e, 50), 1),
    e2eP99Ms: round(percentile(e2e, 99), 1),
    outputTokPerSec: round(ok.reduce((a, s) => a + s.outputTokens, 0) / wallSec, 1),
    requestsPerSec: round(ok.length / wallSec, 2),
    reuseRatio: round(prompt === 0 ? 0 : cached / prompt, 4),
    workerReuseRatio: round(queries === 0 ? 0 : hits / queries, 4),
    perWorker: server.workerIds.map((id) => server.decisions.filter((d) => d.worker === id).length),
    eppDecisionP50Ms: round(percentile(decisionMs, 50), 2),
    eppDecisionP99Ms: round(percentile(decisionMs, 99), 2),
    eppSelectionMeanMs: round(selectCount === 0 ? NaN : (selectSum / selectCount) * 1000, 3),
    ttftSorted: ttft.map((v) => round(v, 1)),
  };
}
