import type { Engine, RequestResult } from "@dynamo/engine-sim";
import { Counter, Gauge, Histogram, Registry } from "prom-client";

const LATENCY_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80,
];
const TOKEN_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000];

/**
 * The `vllm:*` series of one engine (one DP rank), as vLLM and llm-d-inference-sim expose them: load
 * gauges read from the engine at scrape time, counters and histograms fed by finished requests.
 */
export class EngineMetrics {
  readonly registry = new Registry();
  private readonly labels: { model_name: string; engine: string };
  private readonly success: Counter<"model_name" | "engine" | "finished_reason">;
  private readonly counters: Record<"prompt" | "generation" | "queries" | "hits", Counter<"model_name" | "engine">>;
  private readonly histograms: Record<string, Histogram<"model_name" | "engine">>;

  constructor(engine: Engine, modelName: string) {
    this.labels = { model_name: modelName, engine: String(engine.rank) };
    const labelNames = ["model_name", "engine"] as const;
    const registers = [this.registry];
    const labels = this.labels;
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.set(labels, read());
        },
      });
    gauge("vllm:num_requests_running", "Requests in the running batch.", () => engine.load().running);
    gauge("vllm:num_requests_waiting", "Requests waiting to be scheduled.", () => engine.load().waiting);
    gauge("vllm:kv_cache_usage_perc", "KV-cache usage (1 = full).", () => engine.load().kvUsage);
    gauge("vllm:gpu_cache_usage_perc", "KV-cache usage (1 = full); older name.", () => engine.load().kvUsage);
    const config = engine.config;
    new Gauge({
      name: "vllm:cache_config_info",
      help: "Information of the KV-cache configuration.",
      labelNames: ["block_size", "cache_dtype", "num_gpu_blocks", "num_cpu_blocks", "enable_prefix_caching"],
      registers,
      collect() {
        this.set(
          {
            block_size: String(config.blockSize),
            cache_dtype: "auto",
            num_gpu_blocks: String(config.numGpuBlocks),
            num_cpu_blocks: "0",
            enable_prefix_caching: String(config.enablePrefixCaching),
          },
          1,
        );
      },
    });
    new Gauge({
      name: "vllm:lora_requests_info",
      help: "Running and waiting LoRA adapters.",
      labelNames: ["running_lora_adapters", "waiting_lora_adapters", "max_lora"],
      registers,
      collect() {
        const load = engine.load();
        this.reset();
        this.set(
          {
            running_lora_adapters: load.runningLoras.join(","),
            waiting_lora_adapters: load.waitingLoras.join(","),
            max_lora: String(load.maxLoras),
          },
          Date.now() / 1000,
        );
      },
    });
    const counter = (name: string, help: string) => new Counter({ name, help, labelNames, registers });
    this.counters = {
      prompt: counter("vllm:prompt_tokens_total", "Prefill tokens processed."),
      generation: counter("vllm:generation_tokens_total", "Generation tokens processed."),
      queries: counter("vllm:prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache."),
      hits: counter("vllm:prefix_cache_hits_total", "Prompt tokens found in the prefix cache."),
    };
    this.success = new Counter({
      name: "vllm:request_success_total",
      help: "Successfully processed requests.",
      labelNames: ["model_name", "engine", "finished_reason"],
      registers,
    });
    const histogram = (name: string, help: string, buckets: number[]) =>
      new Histogram({ name, help, labelNames, registers, buckets });
    this.histograms = {
      ttft: histogram("vllm:time_to_first_token_seconds", "Time to first token.", LATENCY_BUCKETS),
      tpot: histogram("vllm:time_per_output_token_seconds", "Time per output token.", LATENCY_BUCKETS),
      itl: histogram("vllm:inter_token_latency_seconds", "Inter-token latency.", LATENCY_BUCKETS),
      e2e: histogram("vllm:e2e_request_latency_seconds", "End-to-end request latency.", LATENCY_BUCKETS),
      queue: histogram("vllm:request_queue_time_seconds", "Time in the waiting queue.", LATENCY_BUCKETS),
      inference: histogram("vllm:request_inference_time_seconds", "Time running.", LATENCY_BUCKETS),
      prefill: histogram("vllm:request_prefill_time_seconds", "Time in prefill.", LATENCY_BUCKETS),
      decode: histogram("vllm:request_decode_time_seconds", "Time in decode.", LATENCY_BUCKETS),
      promptTokens: histogram("vllm:request_prompt_tokens", "Prompt tokens per request.", TOKEN_BUCKETS),
      generationTokens: histogram("vllm:request_generation_tokens", "Generated tokens per request.", TOKEN_BUCKETS),
      maxTokens: histogram("vllm:request_params_max_tokens", "max_tokens of requests.", TOKEN_BUCKETS),
    };
  }

  /** Records a request that ended (cancelled ones count their tokens, not a success). */
  observe(result: RequestResult, maxTokens: number): void {
    const labels = this.labels;
    const seconds = (ms: number) => ms / 1000;
    const h = this.histograms;
    this.counters.prompt.inc(labels, result.promptTokens);
    this.counters.generation.inc(labels, result.outputTokens);
    this.counters.queries.inc(labels, result.promptTokens);
    this.counters.hits.inc(labels, result.cachedTokens);
    if (result.reason === "cancelled") return;
    this.success.inc({ ...labels, finished_reason: result.reason === "transferred" ? "length" : result.reason });
    h["e2e"]!.observe(labels, seconds(result.endMs - result.arrivalMs));
    h["promptTokens"]!.observe(labels, result.promptTokens);
    h["generationTokens"]!.observe(labels, result.outputTokens);
    h["maxTokens"]!.observe(labels, maxTokens);
    if (result.ttftMs !== null) h["ttft"]!.observe(labels, seconds(result.ttftMs));
    if (result.meanItlMs !== null) {
      h["tpot"]!.observe(labels, seconds(result.meanItlMs));
      h["itl"]!.observe(labels, seconds(result.meanItlMs));
    }
    if (result.scheduledMs !== null) {
      h["queue"]!.observe(labels, seconds(result.scheduledMs - result.arrivalMs));
      h["inference"]!.observe(labels, seconds(result.endMs - result.scheduledMs));
      if (result.firstTokenMs !== null) {
        h["prefill"]!.observe(labels, seconds(result.firstTokenMs - result.scheduledMs));
        h["decode"]!.observe(labels, seconds(result.endMs - result.firstTokenMs));
      }
    }
  }
}
