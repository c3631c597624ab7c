import { POLYNOMIAL_TIMING } from "./timing.js";
import type { EngineConfig, EngineOptions } from "./types.js";

/** Defaults of Dynamo's mocker in vLLM mode (and the project's where it has none). */
export const ENGINE_DEFAULTS: Omit<EngineConfig, "maxModelLen"> = {
  numGpuBlocks: 16_384,
  blockSize: 64,
  maxNumSeqs: 256,
  maxNumBatchedTokens: 8192,
  enablePrefixCaching: true,
  enableChunkedPrefill: true,
  preemptionMode: "lifo",
  eviction: "lineage",
  watermark: 0.01,
  speedupRatio: 1,
  decodeSpeedupRatio: 1,
  timing: POLYNOMIAL_TIMING,
  disaggregationMode: "agg",
  kvTransferBandwidth: 64,
  kvBytesPerToken: 131_072,
  maxLoras: 1,
  loraLoadTimeMs: 25,
  blockHash: "sha256_cbor",
  hashSeed: "vllm-none-hash",
  medium: "GPU",
  vocabSize: 151_643,
  dataParallelRank: 0,
  fastForward: true,
};

/** A configuration value out of range: the message names the option and what it accepts. */
export class EngineConfigError extends Error {
  override readonly name = "EngineConfigError";
}

function positiveInt(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new EngineConfigError(`${name} must be a positive integer, got ${value}`);
}

function nonNegative(name: string, value: number): void {
  if (!Number.isFinite(value) || value < 0)
    throw new EngineConfigError(`${name} must be a finite number ≥ 0, got ${value}`);
}

function oneOf<T extends string>(name: string, value: T, allowed: readonly T[]): void {
  if (!allowed.includes(value))
    throw new EngineConfigError(`${name} must be one of ${allowed.join(", ")}, got ${String(value)}`);
}

/** Fills in defaults and checks every value; throws `EngineConfigError` on a bad one. */
export function resolveEngineConfig(options: EngineOptions = {}): EngineConfig {
  const defined = Object.fromEntries(
    Object.entries(options).filter(
      ([key, value]) => value !== undefined && key !== "onKvEvents" && key !== "onCallbackError",
    ),
  ) as Partial<EngineConfig>;
  const merged = { ...ENGINE_DEFAULTS, ...defined };
  const config: EngineConfig = {
    ...merged,
    maxModelLen: defined.maxModelLen ?? merged.numGpuBlocks * merged.blockSize,
  };
  positiveInt("numGpuBlocks", config.numGpuBlocks);
  positiveInt("blockSize", config.blockSize);
  positiveInt("maxNumSeqs", config.maxNumSeqs);
  positiveInt("maxNumBatchedTokens", config.maxNumBatchedTokens);
  positiveInt("maxModelLen", config.maxModelLen);
  positiveInt("maxLoras", config.maxLoras);
  positiveInt("vocabSize", config.vocabSize);
  nonNegative("speedupRatio", config.speedupRatio);
  nonNegative("kvBytesPerToken", config.kvBytesPerToken);
  nonNegative("loraLoadTimeMs", config.loraLoadTimeMs);
  if (!(config.decodeSpeedupRatio > 0) || !Number.isFinite(config.decodeSpeedupRatio))
    throw new EngineConfigError(`decodeSpeedupRatio must be a finite number > 0, got ${config.decodeSpeedupRatio}`);
  if (!(config.kvTransferBandwidth > 0) || !Number.isFinite(config.kvTransferBandwidth))
    throw new EngineConfigError(
      `kvTransferBandwidth must be a finite number of GB/s > 0, got ${config.kvTransferBandwidth}`,
    );
  if (!(config.watermark >= 0 && config.watermark < 1))
    throw new EngineConfigError(`watermark must be a fraction in [0, 1), got ${config.watermark}`);
  if (!Number.isSafeInteger(config.dataParallelRank) || config.dataParallelRank < 0)
    throw new EngineConfigError(`dataParallelRank must be an integer ≥ 0, got ${config.dataParallelRank}`);
  oneOf("preemptionMode", config.preemptionMode, ["lifo", "fifo"]);
  oneOf("eviction", config.eviction, ["lineage", "lru"]);
  oneOf("disaggregationMode", config.disaggregationMode, ["agg", "prefill", "decode"]);
  oneOf("blockHash", config.blockHash, ["sha256_cbor", "xxh3"]);
  if (config.maxModelLen > config.numGpuBlocks * config.blockSize)
    throw new EngineConfigError(
      `maxModelLen ${config.maxModelLen} exceeds the KV capacity of ${config.numGpuBlocks * config.blockSize} tokens`,
    );
  return config;
}
