import { TRACE_BLOCK_TOKENS, type TraceRequest } from "../mooncake.js";
import { summarise } from "../routing/metrics.js";
import { policyByName } from "../routing/policies.js";
import { replayPolicy } from "../routing/replay.js";
import type { SimRequest } from "../routing/workloads.js";
import type { LiveOptions, SimulatorReplay } from "./compare.js";

/**
 * The offline simulator on the live run's slice and settings: the same requests (the trace's blocks as token
 * ids, output capped as the live client caps it), arriving at the live rate, over as many simulated engines with
 * the same block size and capacity, the router deciding through the same code. The live engines run
 * `speedupRatio` times faster than real time, so live arrivals `1/rate` s apart are `speedupRatio/rate` s apart
 * in engine time; simulated latencies are divided (and throughput multiplied) by the ratio to compare.
 */
export const simulateSlice: SimulatorReplay = async (slice: readonly TraceRequest[], options: LiveOptions, mode) => {
  const gapMs = (1000 / options.rate) * options.speedupRatio;
  const requests: SimRequest[] = slice.map((r, i) => ({
    arrivalMs: i * gapMs,
    outputLength: Math.max(1, Math.min(r.outputLength, options.maxOutputTokens)),
    inputLength: r.inputLength,
    segments: r.hashIds.map((id) => [id, TRACE_BLOCK_TOKENS] as const),
  }));
  const result = await replayPolicy(
    requests,
    policyByName(mode === "kv" ? "ours" : "round-robin"),
    {
      workers: options.workers,
      blockSize: options.blockSize,
      numGpuBlocks: options.gpuBlocks,
      eventDelayMs: 5,
      scrapeIntervalMs: 50,
      sampleIntervalMs: 1000,
      seed: 1,
      replicas: 1,
      syncDelayMs: 0,
    },
    () => undefined,
  );
  const m = summarise(result, 1);
  const round = (value: number) => Math.round(value * 100) / 100;
  return {
    ttftP50Ms: round(m.ttftP50Ms / options.speedupRatio),
    ttftP99Ms: round(m.ttftP99Ms / options.speedupRatio),
    reuseRatio: m.reuseRatio,
    outputTokPerSec: round(m.outputTokPerSec * options.speedupRatio),
  };
};
