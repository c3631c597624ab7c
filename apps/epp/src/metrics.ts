import type { ReplicaSyncStats } from "@dynamo/replica-sync";
import type { RejectionReason, StreamSummary, Usage } from "@dynamo/ext-proc";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, exponentialBuckets } from "prom-client";

/** Live values read when Prometheus scrapes. */
export interface MetricSources {
  /** ext_proc streams open. */
  streams(): number;
  /** Requests booked on the router (in flight on the workers). */
  bookings(): number;
  /** Workers known to discovery. */
  workers(): number;
  /** Replica sync counters, when replicas share bookings. */
  replicas?(): ReplicaSyncStats | undefined;
  /** KV-event counters per worker (id in decimal). */
  workerEvents?(): Iterable<{ workerId: string; applied: number; rejected: number; wrongBlockSize: number }>;
}

export type Phase = "render_tokenize" | "selection";
export type LifecycleOperation = "prefill_complete" | "request_complete";

const SECONDS_1MS_TO_64S = exponentialBuckets(0.001, 2, 17);
const DECISION_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const TOKENS = exponentialBuckets(16, 2, 15);
/** Dynamo's cached-tokens buckets: 50 → 128,000 in 12 logarithmic steps. */
const CACHED_TOKENS = exponentialBuckets(50, Math.pow(128_000 / 50, 1 / 11), 12).map((v) => Math.round(v));

/**
 * The endpoint picker's Prometheus metrics in a registry of its own: Dynamo's `dynamo_epp_*` and router
 * series (label `model` bound once at start, never read from requests), and GAIE's `inference_*` names
 * where they fit, for dashboards built for either.
 */
export class EppMetrics {
  readonly registry = new Registry();
  private readonly model: { model: string };
  private readonly gaie: { model_name: string; target_model_name: string };
  private readonly requests: Counter<"model" | "outcome">;
  private readonly duration: Histogram<"model" | "outcome">;
  private readonly phases: Histogram<"model" | "phase" | "outcome">;
  private readonly firstBody: Histogram<"model">;
  private readonly callbacks: Counter<"model" | "operation" | "result">;
  private readonly cachedTokens: Histogram<"model">;
  private readonly predictedCachedTokens: Histogram<"model">;
  private readonly mismatches: Counter<"model">;
  private readonly rejections: Counter<"model" | "reason">;
  private readonly routerStarted: Counter<"model" | "inference_pool">;
  private readonly routerInput: Histogram<"model" | "inference_pool">;
  private readonly routerOutput: Histogram<"model" | "inference_pool">;
  private readonly pool: { model: string; inference_pool: string };
  private readonly gaieRequests: Counter<"model_name" | "target_model_name">;
  private readonly gaieErrors: Counter<"model_name" | "target_model_name" | "error_code">;
  private readonly gaieDuration: Histogram<"model_name" | "target_model_name">;
  private readonly gaieRequestSizes: Histogram<"model_name" | "target_model_name">;
  private readonly gaieInput: Histogram<"model_name" | "target_model_name">;
  private readonly gaieOutput: Histogram<"model_name" | "target_model_name">;
  private readonly gaieCached: Histogram<"model_name" | "target_model_name">;
  private readonly gaieTtft: Histogram<"model_name" | "target_model_name">;
  private readonly gaieTpot: Histogram<"model_name" | "target_model_name">;
  private readonly schedulerE2e: Histogram;
  private readonly schedulerAttempts: Counter<"status">;
  private readonly hitRatio: Histogram;

  constructor(
    modelName: string | undefined,
    poolName: string | undefined,
    sources: MetricSources,
    eventLoopResolutionMs = 10,
  ) {
    const model = modelName ?? "unknown";
    this.model = { model };
    this.pool = { model, inference_pool: poolName ?? "" };
    this.gaie = { model_name: model, target_model_name: model };
    const registers = [this.registry];
    // Process figures: resident memory, CPU, heap, and the event-loop delay since the previous scrape, sampled by
    // a timer every `eventLoopResolutionMs` (each sample reads that interval plus the delay). A 1 ms timer wakes
    // an idle picker a thousand times a second: about 30 ms of CPU per second, more than its requests cost.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: eventLoopResolutionMs });
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
      new Counter<L>({ name, help, labelNames, registers });
    const histogram = <L extends string>(name: string, help: string, labelNames: readonly L[], buckets: number[]) =>
      new Histogram<L>({ name, help, labelNames, buckets, registers });
    const gauge = (name: string, help: string, labelNames: string[], read: () => [object, number][]) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        collect() {
          for (const [labels, value] of read()) this.set(labels, value);
        },
      });
    // A counter whose value is read at scrape time from a cumulative figure kept elsewhere.
    const cumulative = (name: string, help: string, labelNames: string[], read: () => [object, number][]) =>
      new Counter({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          for (const [labels, value] of read()) this.inc(labels, value);
        },
      });

    this.requests = counter("dynamo_epp_requests_total", "ext_proc streams by outcome", ["model", "outcome"]);
    this.duration = histogram(
      "dynamo_epp_request_duration_seconds",
      "ext_proc stream duration",
      ["model", "outcome"],
      SECONDS_1MS_TO_64S,
    );
    gauge("dynamo_epp_streams_inflight", "ext_proc streams open", ["model"], () => [[this.model, sources.streams()]]);
    const replica = (read: (stats: ReplicaSyncStats) => number) => (): [object, number][] => {
      const stats = sources.replicas?.();
      return stats === undefined ? [] : [[this.model, read(stats)]];
    };
    gauge(
      "dynamo_epp_replica_peers",
      "other EPP replicas alive (replica sync)",
      ["model"],
      replica((s) => s.peers),
    );
    gauge(
      "dynamo_epp_replica_peer_bookings",
      "bookings owned by other EPP replicas in this replica's load view",
      ["model"],
      replica((s) => s.peerBookings),
    );
    gauge(
      "dynamo_epp_replica_expired_bookings",
      "bookings dropped because their replica's lease ran out (cumulative)",
      ["model"],
      replica((s) => s.expiredBookings),
    );
    cumulative(
      "dynamo_epp_replica_decisions_rechecked_total",
      "audited routing decisions re-scored once every peer replica had seen them",
      ["model"],
      replica((s) => s.decisionsRechecked),
    );
    cumulative(
      "dynamo_epp_replica_decision_conflicts_total",
      "re-scored decisions that would have chosen another worker had they known peers' concurrent bookings",
      ["model"],
      replica((s) => s.decisionConflicts),
    );
    cumulative(
      "dynamo_epp_replica_concurrent_bookings_total",
      "peer bookings made concurrently with an audited decision (neither replica knew the other's)",
      ["model"],
      replica((s) => s.concurrentBookings),
    );
    gauge(
      "dynamo_epp_replica_resyncs",
      "snapshots asked again of a peer because some of its messages were lost (cumulative)",
      ["model"],
      replica((s) => s.resyncs),
    );
    gauge(
      "dynamo_epp_replica_malformed_messages",
      "replica-sync messages that could not be decoded (cumulative)",
      ["model"],
      replica((s) => s.malformed),
    );
    this.phases = histogram(
      "dynamo_epp_phase_duration_seconds",
      "time in each routing phase (render_tokenize, selection)",
      ["model", "phase", "outcome"],
      DECISION_SECONDS,
    );
    this.firstBody = histogram(
      "dynamo_epp_first_response_body_seconds",
      "decision to the first non-empty response body chunk (not TTFT)",
      ["model"],
      SECONDS_1MS_TO_64S,
    );
    this.callbacks = counter("dynamo_epp_lifecycle_callbacks_total", "router bookkeeping calls on the response path", [
      "model",
      "operation",
      "result",
    ]);
    this.cachedTokens = histogram(
      "dynamo_epp_cached_tokens",
      "usage.prompt_tokens_details.cached_tokens reported by the workers",
      ["model"],
      CACHED_TOKENS,
    );
    this.predictedCachedTokens = histogram(
      "dynamo_epp_predicted_cached_tokens",
      "prompt tokens the router expected the chosen worker to hold in its KV cache",
      ["model"],
      CACHED_TOKENS,
    );
    this.mismatches = counter(
      "dynamo_epp_served_endpoint_mismatch_total",
      "responses served by another endpoint than the one picked",
      ["model"],
    );
    this.rejections = counter("dynamo_epp_rejections_total", "requests answered without routing, by reason", [
      "model",
      "reason",
    ]);
    this.routerStarted = counter("dynamo_component_router_requests_started_total", "requests routed and booked", [
      "model",
      "inference_pool",
    ]);
    this.routerInput = histogram(
      "dynamo_component_router_input_sequence_tokens",
      "prompt tokens of routed requests",
      ["model", "inference_pool"],
      TOKENS,
    );
    this.routerOutput = histogram(
      "dynamo_component_router_output_sequence_tokens",
      "completion tokens of finished requests",
      ["model", "inference_pool"],
      TOKENS,
    );

    const gaieLabels = ["model_name", "target_model_name"] as const;
    this.gaieRequests = counter("inference_objective_request_total", "requests", gaieLabels);
    this.gaieErrors = counter("inference_objective_request_error_total", "failed requests", [
      ...gaieLabels,
      "error_code",
    ]);
    this.gaieDuration = histogram(
      "inference_objective_request_duration_seconds",
      "request duration",
      gaieLabels,
      SECONDS_1MS_TO_64S,
    );
    this.gaieRequestSizes = histogram(
      "inference_objective_request_sizes",
      "request body bytes",
      gaieLabels,
      exponentialBuckets(64, 4, 12),
    );
    this.gaieInput = histogram("inference_objective_input_tokens", "prompt tokens", gaieLabels, TOKENS);
    this.gaieOutput = histogram("inference_objective_output_tokens", "completion tokens", gaieLabels, TOKENS);
    this.gaieCached = histogram(
      "inference_objective_prompt_cached_tokens",
      "cached prompt tokens",
      gaieLabels,
      CACHED_TOKENS,
    );
    this.gaieTtft = histogram(
      "inference_objective_request_ttft_seconds",
      "end of the request body to the first response chunk",
      gaieLabels,
      SECONDS_1MS_TO_64S,
    );
    this.gaieTpot = histogram(
      "inference_objective_request_tpot_seconds",
      "time per output token after the first",
      gaieLabels,
      exponentialBuckets(0.0005, 2, 14),
    );
    gauge("inference_objective_running_requests", "requests in flight", [...gaieLabels], () => [
      [this.gaie, sources.bookings()],
    ]);
    gauge("inference_pool_ready_pods", "workers known to discovery", ["name"], () => [
      [{ name: this.pool.inference_pool }, sources.workers()],
    ]);
    gauge("inference_pool_average_running_requests", "requests in flight per worker", ["name"], () => [
      [{ name: this.pool.inference_pool }, sources.workers() === 0 ? 0 : sources.bookings() / sources.workers()],
    ]);
    this.schedulerE2e = histogram(
      "inference_extension_scheduler_e2e_duration_seconds",
      "selection and booking",
      [],
      DECISION_SECONDS,
    );
    this.schedulerAttempts = counter("inference_extension_scheduler_attempts_total", "scheduling attempts", ["status"]);
    this.hitRatio = histogram(
      "inference_extension_prefix_indexer_hit_ratio",
      "predicted cached fraction of each routed prompt",
      [],
      [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1],
    );
    const perWorker = (pick: (w: { applied: number; rejected: number; wrongBlockSize: number }) => number) => () =>
      [...(sources.workerEvents?.() ?? [])].map((w): [object, number] => [
        { ...this.model, worker_id: w.workerId },
        pick(w),
      ]);
    gauge(
      "dynamo_epp_kv_events_applied",
      "KV events applied to the index, per worker",
      ["model", "worker_id"],
      perWorker((w) => w.applied),
    );
    gauge(
      "dynamo_epp_kv_events_rejected",
      "KV events the index refused, per worker",
      ["model", "worker_id"],
      perWorker((w) => w.rejected),
    );
    gauge(
      "dynamo_epp_kv_events_wrong_block_size",
      "vLLM BlockStored events whose block size differs from the router's (never indexed), per worker",
      ["model", "worker_id"],
      perWorker((w) => w.wrongBlockSize),
    );
    new Gauge({
      name: "inference_extension_info",
      help: "endpoint picker build",
      labelNames: ["commit", "build_ref"],
      registers,
    }).set({ commit: "", build_ref: "dynamo-epp" }, 1);
  }

  /** One finished ext_proc stream (every request, routed or not). */
  stream(summary: StreamSummary): void {
    const outcome = { ...this.model, outcome: summary.outcome };
    this.requests.inc(outcome);
    this.duration.observe(outcome, summary.durationMs / 1000);
    if (summary.servedMismatch === true) this.mismatches.inc(this.model);
    if (summary.firstChunkMs !== undefined) this.firstBody.observe(this.model, summary.firstChunkMs / 1000);
    if (summary.headerOnly) return;
    this.gaieRequests.inc(this.gaie);
    this.gaieDuration.observe(this.gaie, summary.durationMs / 1000);
    const status = summary.rejection?.status ?? summary.responseStatus;
    if (summary.outcome !== "response_eos" && summary.outcome !== "incomplete")
      this.gaieErrors.inc({ ...this.gaie, error_code: String(status ?? summary.grpcError?.code ?? "") });
  }

  /** The size of a request body that reached routing. */
  requestBytes(bytes: number): void {
    this.gaieRequestSizes.observe(this.gaie, bytes);
  }

  phase(phase: Phase, ok: boolean, ms: number): void {
    this.phases.observe({ ...this.model, phase, outcome: ok ? "ok" : "error" }, ms / 1000);
  }

  lifecycle(operation: LifecycleOperation, ok: boolean): void {
    this.callbacks.inc({ ...this.model, operation, result: ok ? "ok" : "error" });
  }

  /** A request routed and booked. */
  routed(isl: number, predictedCachedTokens: number, selectMs: number): void {
    this.routerStarted.inc(this.pool);
    this.routerInput.observe(this.pool, isl);
    this.predictedCachedTokens.observe(this.model, predictedCachedTokens);
    this.schedulerE2e.observe(selectMs / 1000);
    this.schedulerAttempts.inc({ status: "success" });
    if (isl > 0) this.hitRatio.observe(Math.min(1, predictedCachedTokens / isl));
  }

  /** A request answered without routing. */
  rejected(reason: RejectionReason, scheduled: boolean): void {
    this.rejections.inc({ ...this.model, reason });
    if (scheduled) this.schedulerAttempts.inc({ status: "failure" });
  }

  /** A routed request's response ended (usage as the worker reported it). */
  completed(usage: Usage | undefined, ttftMs: number | undefined, durationMs: number, generated: number): void {
    if (usage?.cachedTokens !== undefined) {
      this.cachedTokens.observe(this.model, usage.cachedTokens);
      this.gaieCached.observe(this.gaie, usage.cachedTokens);
    }
    if (usage?.promptTokens !== undefined) this.gaieInput.observe(this.gaie, usage.promptTokens);
    const output = usage?.completionTokens ?? (generated > 0 ? generated : undefined);
    if (output !== undefined) {
      this.routerOutput.observe(this.pool, output);
      this.gaieOutput.observe(this.gaie, output);
    }
    if (ttftMs !== undefined) {
      this.gaieTtft.observe(this.gaie, ttftMs / 1000);
      if (output !== undefined && output > 1)
        this.gaieTpot.observe(this.gaie, (durationMs - ttftMs) / 1000 / (output - 1));
    }
  }

  /** The text exposition of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}
