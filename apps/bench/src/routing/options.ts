import { DEFAULT_SETTINGS } from "@dynamo/kv-router";
import { numberOption, textOption } from "../framework.js";
import { MOONCAKE_CONVERSATION_TRACE } from "../mooncake.js";
import { POLICIES, policyByName, type PolicySpec } from "./policies.js";
import type { SimConfig } from "./replay.js";

export type WorkloadName = "trace" | "shared-prefix" | "multi-turn";

export interface RoutingOptions {
  readonly workload: WorkloadName;
  readonly trace: string;
  /** Requests of the trace replayed (its first ones). */
  readonly limit: number;
  /** Arrival speedups swept, in increasing order. */
  readonly speedups: readonly number[];
  readonly policies: readonly PolicySpec[];
  readonly sim: SimConfig;
}

/** Default sweep: round-robin's TTFT p50 crosses 1 s between the second and the third on the shipped trace. */
export const DEFAULT_SPEEDUPS = [4, 6, 8];
export const DEFAULT_TRACE_REQUESTS = 1500;

/** The positive numbers after `--<name>`, comma-separated (ascending unless `sort` is false), or `fallback`. */
export function numberList(args: readonly string[], name: string, fallback: readonly number[], sort = true): number[] {
  const at = args.indexOf(`--${name}`);
  if (at < 0) return [...fallback];
  const values = (args[at + 1] ?? "").split(",").map(Number);
  if (values.length === 0 || values.some((v) => !Number.isFinite(v) || v <= 0))
    throw new Error(`--${name} needs positive numbers separated by commas (e.g. 4,6,8)`);
  return sort ? values.sort((a, b) => a - b) : values;
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value)) throw new Error(`--${name} needs a positive integer`);
  return value;
}

export function nonNegative(args: readonly string[], name: string, fallback: number): number {
  const at = args.indexOf(`--${name}`);
  if (at < 0) return fallback;
  const value = Number(args[at + 1]);
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} needs a number ≥ 0`);
  return value;
}

export function parseRoutingOptions(args: readonly string[]): RoutingOptions {
  const workload = textOption(args, "workload", "trace");
  if (workload !== "trace" && workload !== "shared-prefix" && workload !== "multi-turn")
    throw new Error("--workload must be trace, shared-prefix or multi-turn");
  const at = args.indexOf("--policies");
  const policies = at < 0 ? POLICIES : textOption(args, "policies", "").split(",").map(policyByName);
  const blockSize = numberOption(args, "block-size", 64);
  if (!Number.isInteger(blockSize) || 512 % blockSize !== 0)
    throw new Error("--block-size must divide 512 (16, 32, 64, 128, 256 or 512) so trace blocks stay aligned");
  return {
    workload,
    trace: textOption(args, "trace", MOONCAKE_CONVERSATION_TRACE),
    limit: numberOption(args, "limit", DEFAULT_TRACE_REQUESTS),
    speedups: numberList(args, "arrival-speedup", workload === "trace" ? DEFAULT_SPEEDUPS : [1, 2, 3]),
    policies,
    sim: {
      workers: numberOption(args, "workers", 8),
      blockSize,
      numGpuBlocks: numberOption(args, "num-gpu-blocks", 16_384),
      eventDelayMs: nonNegative(args, "event-delay-ms", 5),
      scrapeIntervalMs: numberOption(args, "scrape-interval-ms", 50),
      sampleIntervalMs: numberOption(args, "sample-interval-ms", 1000),
      seed: numberOption(args, "seed", 1),
      replicas: positiveInteger(numberOption(args, "replicas", 1), "replicas"),
      syncDelayMs: nonNegative(args, "sync-delay-ms", 5),
      tieBand: nonNegative(args, "tie-band", DEFAULT_SETTINGS.replicaTieBand),
    },
  };
}
