export {
  DISAGG_DECODE_OVERRIDES,
  DisaggPlanner,
  type AggregatedPlan,
  type DisaggPlannerOptions,
  type DisaggregatedPlan,
  type Plan,
  type PlanRequest,
  type RejectedPlan,
} from "./planner.js";
