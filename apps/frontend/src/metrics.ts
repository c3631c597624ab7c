import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, exponentialBuckets } from "prom-client";

/** How a disaggregated request ended. */
export type DisaggOutcome = "decoded" | "finished_in_prefill" | "prefill_rejected" | "fallback_aggregated" | "refused";

/** Where a request's prompt tokens came from. */
export type TokenSource = "epp" | "client" | "local" | "engine";

/** The sidecar's Prometheus series, Dynamo's frontend names where they exist (`dynamo_frontend_*`). No label is read from requests (bounded cardinality). */
export class FrontendMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<"endpoint" | "request_type" | "status">;
  private readonly inflight: Gauge;
  private readonly ttft: Histogram;
  private readonly duration: Histogram;
  private readonly disagg: Counter<"outcome">;
  private readonly tokens: Counter<"source">;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    this.requests = new Counter({
      name: "dynamo_frontend_requests_total",
      help: "Requests served, by endpoint, request type (stream or unary) and status (success or error)",
      labelNames: ["endpoint", "request_type", "status"],
      registers,
    });
    this.inflight = new Gauge({
      name: "dynamo_frontend_inflight_requests",
      help: "Requests being served",
      registers,
    });
    this.ttft = new Histogram({
      name: "dynamo_frontend_time_to_first_token_seconds",
      help: "From the request's arrival to the first response byte sent to the client",
      buckets: exponentialBuckets(0.001, 2, 17),
      registers,
    });
    this.duration = new Histogram({
      name: "dynamo_frontend_request_duration_seconds",
      help: "From the request's arrival to its last response byte",
      buckets: exponentialBuckets(0.001, 2, 18),
      registers,
    });
    this.disagg = new Counter({
      name: "dynamo_frontend_disaggregated_requests_total",
      help: "Disaggregated requests by outcome: decoded after prefill, finished in prefill, prefill 4xx relayed, aggregated fallback, refused (DYN_ENFORCE_DISAGG)",
      labelNames: ["outcome"],
      registers,
    });
    this.tokens = new Counter({
      name: "dynamo_frontend_prompt_token_source_total",
      help: "Requests by where the prompt tokens came from: the endpoint picker (nvext.token_data), the client (token prompts), local tokenization, or the engine",
      labelNames: ["source"],
      registers,
    });
  }

  started(): void {
    this.inflight.inc();
  }

  firstByte(seconds: number): void {
    this.ttft.observe(seconds);
  }

  finished(endpoint: string, stream: boolean, ok: boolean, seconds: number): void {
    this.inflight.dec();
    this.duration.observe(seconds);
    this.requests.inc({ endpoint, request_type: stream ? "stream" : "unary", status: ok ? "success" : "error" });
  }

  disaggregated(outcome: DisaggOutcome): void {
    this.disagg.inc({ outcome });
  }

  tokenSource(source: TokenSource): void {
    this.tokens.inc({ source });
  }
}
