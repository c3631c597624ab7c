export { Engine, type WakeListener } from "./engine.js";
export { EngineWorker, type WorkerOptions, type WorkerRequest } from "./worker.js";
export { VirtualLoop } from "./virtual-loop.js";
export { playWorkload } from "./workload.js";
export { EngineEventSource } from "./event-source.js";
export { RealtimeDriver, type RealtimeDriverOptions, type Timers } from "./realtime-driver.js";
export { VirtualClock, systemClock } from "./clock.js";
export { ENGINE_DEFAULTS, EngineConfigError, resolveEngineConfig } from "./config.js";
export { EngineRequestError } from "./request-validation.js";
export {
  POLYNOMIAL_TIMING,
  kvTransferMs,
  polynomialDecodeMs,
  polynomialPrefillMs,
  stepDurationMs,
  type StepTimingConfig,
  type StepWork,
} from "./timing.js";
export { createBlockHasher, sha256CborNoneHash, type BlockHasher, type ChainValue } from "./block-hash.js";
export type { CachedBlock } from "./block-pool.js";
export type {
  AllBlocksClearedEvent,
  BlockHashAlgorithm,
  BlockRemovedEvent,
  BlockStoredEvent,
  Clock,
  DisaggregationMode,
  EngineConfig,
  EngineLoad,
  EngineOptions,
  EngineRequest,
  EngineStats,
  EventSourceOptions,
  EvictionPolicy,
  FinishReason,
  KvEvent,
  KvEventBatch,
  KvTransferRole,
  PreemptionMode,
  RequestResult,
  RequestState,
  RequestStatus,
  TimeMs,
  TimingModel,
  TokenOutput,
  WorkloadHooks,
  WorkloadOp,
} from "./types.js";
