// Contracts: candidates, the three kinds of pipeline step, evaluations.
export type {
  CandidateTable,
  Chosen,
  EndpointMetrics,
  EndpointSignals,
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
  WeightedScorer,
  WorkerSpec,
} from "./types.js";

// The pool of worker ranks and its pipeline; disaggregated planning over two pools.
export { WorkerPool, type WorkerPoolOptions } from "./pool.js";
export type { LoadDelta } from "./score-table.js";
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

// Baselines: GAIE's and llm-d's scorers, the max-score picker, GAIE's approximate prefix producer,
// Dynamo's 2025 cost form.
export {
  LOAD_AWARE_THRESHOLD,
  PRECISE_TIER_WEIGHTS,
  kvUtilizationScore,
  loadAwareScore,
  precisePrefixScore,
  prefixMatchScore,
  queueScores,
} from "./baselines/scores.js";
export { MaxScorePicker } from "./baselines/max-score-picker.js";
export {
  kvUtilizationScorer,
  loadAwareScorer,
  precisePrefixScorer,
  queueScorer,
} from "./baselines/weighted-scorers.js";
export {
  AVERAGE_CHARACTERS_PER_TOKEN,
  ApproxPrefixIndex,
  approxPrefixHashes,
  type ApproxPrefixOptions,
  type PrefixMatch,
} from "./baselines/approx-prefix.js";
export { ApproxPrefixProducer, GAIE_DEFAULT_WEIGHTS, gaieDefaultPicker } from "./baselines/gaie.js";
export { LLMD_PRECISE_WEIGHTS, llmdPrecisePicker } from "./baselines/llmd.js";
export { DynamoClassicPicker } from "./baselines/dynamo-classic.js";
export { BASELINE_PICKERS, registerBaselinePickers, type BaselineContext } from "./baselines/register.js";

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
