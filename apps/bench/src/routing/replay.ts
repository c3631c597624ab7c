import { Engine, VirtualLoop, polynomialDecodeMs, polynomialPrefillMs, type KvEventBatch } from "@dynamo/engine-sim";
import type { RouterService } from "@dynamo/router-service";
import { TokenArena } from "../token-arena.js";
import type { PolicySpec } from "./policies.js";
import { RouterReplicas, type ConflictCount } from "./replicas.js";
import { ScrapedMetrics, promptText } from "./signals.js";
import { writePromptTokens, type SimRequest } from "./workloads.js";

/** One policy over one workload in virtual time: N simulated engines, the router deciding each arrival. */

export interface SimConfig {
  readonly workers: number;
  /** KV block size of engines and router (tokens; divides 512 so trace blocks stay aligned). */
  readonly blockSize: number;
  /** KV capacity of each engine in blocks. */
  readonly numGpuBlocks: number;
  /** Delay between an engine's KV event and the router applying it (ms). */
  readonly eventDelayMs: number;
  /** Metrics refresh of the scraping baselines (ms). */
  readonly scrapeIntervalMs: number;
  /** Per-worker load samples (ms). */
  readonly sampleIntervalMs: number;
  readonly seed: number;
  /** Router replicas sharing their bookings (1: one router). */
  readonly replicas: number;
  /** Delay of a booking change of one replica reaching the others (ms). */
  readonly syncDelayMs: number;
  /** With several replicas, count the decisions the sync delay changed (a shadow router; slower). */
  readonly measureConflicts?: boolean;
  /** With several replicas: their `DYN_ROUTER_REPLICA_TIE_BAND` (costs this close to the cheapest count as ties). */
  readonly tieBand?: number;
}

/** GAIE's longest prefix considered (blocks): only that much of a prompt is turned into text. */
const APPROX_MAX_PREFIX_BLOCKS = 256;

/** Model name the approximate prefix producer hashes first (any constant does). */
const MODEL = "Qwen/Qwen3-32B";

export interface ReplayResult {
  readonly policy: string;
  readonly requests: number;
  /** Per request, in arrival order. */
  readonly ttftMs: Float64Array;
  readonly e2eMs: Float64Array;
  /** Mean inter-token latency per request (NaN with fewer than two tokens). */
  readonly itlMs: Float64Array;
  readonly promptTokens: Float64Array;
  readonly cachedTokens: Float64Array;
  readonly outputTokens: Float64Array;
  readonly firstArrivalMs: number;
  readonly lastEndMs: number;
  /** Wall-clock time of each routing decision (empty for the pooled bound). */
  readonly decisionMs: Float64Array;
  /** Per-worker samples over virtual time. */
  readonly samples: {
    readonly timesMs: number[];
    /** `[worker][sample]`: KV usage (fraction). */
    readonly kvUsage: number[][];
    /** `[worker][sample]`: waiting + running requests. */
    readonly inflight: number[][];
  };
  readonly wallMs: number;
  /** Decisions the sync delay changed (several replicas with `measureConflicts`), else undefined. */
  readonly conflicts: ConflictCount | undefined;
}

type MutableRequest = {
  id: string;
  tokens: Uint32Array;
  maxTokens: number;
  onToken?: () => void;
  onFinish: (r: import("@dynamo/engine-sim").RequestResult) => void;
};

function buildEngines(
  loop: VirtualLoop,
  policy: PolicySpec,
  config: SimConfig,
  onKv: (w: number, b: KvEventBatch) => void,
) {
  if (policy.pooled) {
    const n = config.workers;
    // N× the cache, the batch and the compute: a step's prompt tokens are split over N devices.
    return [
      new Engine(
        {
          blockSize: config.blockSize,
          numGpuBlocks: config.numGpuBlocks * n,
          maxNumSeqs: 256 * n,
          maxNumBatchedTokens: 8192 * n,
          blockHash: "xxh3",
          timing: { prefillMs: (t) => polynomialPrefillMs(t / n), decodeMs: polynomialDecodeMs },
        },
        loop.clock,
      ),
    ];
  }
  return Array.from(
    { length: config.workers },
    (_, w) =>
      new Engine(
        {
          blockSize: config.blockSize,
          numGpuBlocks: config.numGpuBlocks,
          blockHash: "xxh3",
          ...(policy.events && { onKvEvents: (batch: KvEventBatch) => onKv(w, batch) }),
        },
        loop.clock,
      ),
  );
}

export async function replayPolicy(
  requests: readonly SimRequest[],
  policy: PolicySpec,
  config: SimConfig,
  onProgress: (done: number, total: number) => void,
): Promise<ReplayResult> {
  const started = performance.now();
  const n = requests.length;
  const loop = new VirtualLoop();
  let routers: RouterReplicas | undefined;
  const engines = buildEngines(loop, policy, config, (w, batch) => routers?.kvEvents(workerIds[w]!, batch));
  loop.add(...engines);
  const workerIds = engines.map((_, w) => BigInt(w + 1));
  const scraped = new ScrapedMetrics(engines, workerIds);
  if (!policy.pooled) {
    routers = await RouterReplicas.start({
      policy,
      blockSize: config.blockSize,
      numGpuBlocks: config.numGpuBlocks,
      workerIds,
      signals: scraped,
      now: () => loop.now(),
      seed: config.seed,
      replicas: config.replicas,
      syncDelayMs: config.syncDelayMs,
      eventDelayMs: config.eventDelayMs,
      measureConflicts: config.measureConflicts ?? false,
      tieBand: config.tieBand ?? 0,
    });
  }
  const workerOf = new Map(workerIds.map((id, w) => [id, w]));

  const ttftMs = new Float64Array(n);
  const e2eMs = new Float64Array(n);
  const itlMs = new Float64Array(n);
  const promptTokens = new Float64Array(n);
  const cachedTokens = new Float64Array(n);
  const outputTokens = new Float64Array(n);
  const decisionMs = new Float64Array(routers ? n : 0);
  let lastEndMs = 0;
  const samples = {
    timesMs: [] as number[],
    kvUsage: engines.map(() => [] as number[]),
    inflight: engines.map(() => [] as number[]),
  };
  let nextSample = requests[0]?.arrivalMs ?? 0;
  const sample = () => {
    samples.timesMs.push(nextSample);
    engines.forEach((e, w) => {
      const load = e.load();
      samples.kvUsage[w]!.push(load.kvUsage);
      samples.inflight[w]!.push(load.waiting + load.running);
    });
    nextSample += config.sampleIntervalMs;
  };
  const sampleAt = (t: number) => {
    loop.advanceTo(t);
    sample();
  };
  let lastScrape = -Infinity;
  /** Moves virtual time to `t`: per-worker samples and the last metrics scrape before `t` on the way. */
  const advance = (t: number) => {
    const tick = Math.floor(t / config.scrapeIntervalMs) * config.scrapeIntervalMs;
    if (policy.scraped && tick > lastScrape) {
      while (nextSample <= tick) sampleAt(nextSample);
      loop.advanceTo(tick);
      scraped.scrape();
      lastScrape = tick;
    }
    while (nextSample <= t) sampleAt(nextSample);
    loop.advanceTo(t);
    routers?.deliver(t);
  };

  const arena = new TokenArena();
  const maxPrefixTokens = APPROX_MAX_PREFIX_BLOCKS * config.blockSize;
  const text = new Uint8Array(maxPrefixTokens * 4);
  for (let i = 0; i < n; i++) {
    const r = requests[i]!;
    advance(r.arrivalMs);
    const id = String(i);
    const tokens = writePromptTokens(r, arena.take(r.inputLength));
    let w = 0;
    let svc: RouterService | undefined;
    if (routers) {
      const replica = routers.next();
      svc = routers.services[replica]!;
      if (policy.charPrefix) routers.producers[replica]!.prepare(promptText(tokens, maxPrefixTokens, text), MODEL);
      const shadow = routers.shadowDecision(tokens);
      const t0 = performance.now();
      const d = svc.routeTokenized({ tokens, requestId: id }, { tokens, injectable: false, model: "", tokenizeMs: 0 });
      decisionMs[i] = performance.now() - t0;
      if (shadow) routers.noteConflict(shadow, d.worker.workerId);
      w = workerOf.get(d.worker.workerId)!;
    }
    const request: MutableRequest = {
      id,
      tokens,
      maxTokens: r.outputLength,
      onFinish: (res) => {
        ttftMs[i] = res.ttftMs ?? NaN;
        e2eMs[i] = res.endMs - res.arrivalMs;
        itlMs[i] = res.meanItlMs ?? NaN;
        promptTokens[i] = res.promptTokens;
        cachedTokens[i] = res.cachedTokens;
        outputTokens[i] = res.outputTokens;
        lastEndMs = Math.max(lastEndMs, res.endMs);
        svc?.free(id);
      },
    };
    // Streams only its first token (the router's prefill-complete signal), so decode steps still fast-forward.
    if (svc)
      request.onToken = () => {
        svc.markPrefillComplete(id);
        delete request.onToken;
      };
    engines[w]!.addRequest(request);
    if ((i & 255) === 0) onProgress(i, n);
  }
  while (loop.nextEventTime() !== Infinity) sampleAt(nextSample);
  onProgress(n, n);
  await routers?.stop();
  return {
    policy: policy.name,
    requests: n,
    ttftMs,
    e2eMs,
    itlMs,
    promptTokens,
    cachedTokens,
    outputTokens,
    firstArrivalMs: requests[0]?.arrivalMs ?? 0,
    lastEndMs,
    decisionMs,
    samples,
    wallMs: performance.now() - started,
    conflicts: config.measureConflicts && config.replicas > 1 ? routers?.conflicts : undefined,
  };
}
