export {
  ActiveSequences,
  DEFAULT_ACTIVE_REQUEST_EXPIRY_SECS,
  EXPIRY_CHECK_INTERVAL_SECS,
  type ActiveSequencesOptions,
  type AddRequestSpec,
  type RankHandle,
  type TrackingKeys,
  type RankLoad,
  type SequenceChange,
} from "./active-sequences.js";
export {
  anyThresholdEnabled,
  busyWorkers,
  overBusyThreshold,
  rankBusyReason,
  type BusyInputs,
  type BusyThresholds,
} from "./busy.js";
export {
  DEFAULT_COST_PARAMS,
  classicCost,
  computeCost,
  type CostBreakdown,
  type CostInputs,
  type CostParams,
  type CostRequest,
} from "./cost.js";
export {
  KvCostPolicy,
  LeastLoadedPolicy,
  PowerOfTwoPolicy,
  RandomPolicy,
  RoundRobinPolicy,
  type PolicyChoice,
  type PolicyRequest,
  type PolicyState,
  type RankInfo,
  type RoutingPolicy,
  type ScoredCandidate,
} from "./policy.js";
export {
  WorkerPool,
  type Chosen,
  type Evaluation,
  type PoolRequest,
  type RejectReason,
  type Rejected,
  type RequestOverrides,
  type TierOverlaps,
  type WorkerPoolOptions,
  type WorkerSpec,
} from "./pool.js";
export { seededRng, type Rng } from "./rng.js";
export { selectByCost, softmaxProbabilities, type Selection } from "./selection.js";
