// Contracts: candidates, the three kinds of pipeline step, evaluations.
export type {
  CandidateTable,
  Chosen,
  Evaluation,
  Filter,
  Picker,
  PolicyChoice,
  PolicyRequest,
  PolicyState,
  PoolRequest,
  RankInfo,
  RejectReason,
  Rejected,
  RequestOverrides,
  Rng,
  ScoredCandidate,
  Scorer,
  TierOverlaps,
  WorkerSpec,
} from "./types.js";

// The pool of worker ranks and its pipeline; disaggregated planning over two pools.
export { WorkerPool, type WorkerPoolOptions } from "./pool.js";
export {
  DISAGG_DECODE_OVERRIDES,
  DisaggPlanner,
  type AggregatedPlan,
  type DisaggPlannerOptions,
  type DisaggregatedPlan,
  type Plan,
  type PlanRequest,
  type RejectedPlan,
} from "./disagg.js";

// Steps: filters, scorers, pickers, and pickers by name.
export { BusyFilter } from "./filters.js";
export { KvCostScorer } from "./scorers.js";
export { KvCostPicker, LeastLoadedPicker, PowerOfTwoPicker, RandomPicker, RoundRobinPicker } from "./pickers.js";
export { createPicker, pickerNames, registerPicker } from "./registry.js";

// The pure pieces behind them.
export {
  DEFAULT_COST_PARAMS,
  classicCost,
  computeCost,
  type CostBreakdown,
  type CostInputs,
  type CostParams,
  type CostRequest,
} from "./cost.js";
export { selectByCost, softmaxProbabilities, type Selection } from "./selection.js";
export {
  anyThresholdEnabled,
  busyWorkers,
  overBusyThreshold,
  rankBusyReason,
  type BusyInputs,
  type BusyThresholds,
} from "./busy.js";

// Load bookkeeping.
export {
  ActiveSequences,
  DEFAULT_ACTIVE_REQUEST_EXPIRY_SECS,
  EXPIRY_CHECK_INTERVAL_SECS,
  type ActiveSequencesOptions,
  type AddRequestSpec,
  type RankHandle,
  type RankLoad,
  type SequenceChange,
  type TrackingKeys,
} from "./sequences/active-sequences.js";
