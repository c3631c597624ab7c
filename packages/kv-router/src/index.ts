export { KvRouter } from "./router.js";
export type { DecisionAudit, PoolLoadDeltas, RankLoadDelta } from "./decision-audit.js";
export type { LoadDelta } from "@dynamo/scheduling";
export type {
  ActiveSequenceEvent,
  CandidateExplain,
  KvRouterCounters,
  KvRouterHooks,
  KvRouterOptions,
  RouteDecision,
  RouteExplain,
  RouteRejectReason,
  RouteRejection,
  RouteRequest,
  RouteResult,
  WorkerRegistration,
  WorkerRole,
} from "./types.js";
export {
  DEFAULT_SETTINGS,
  ROUTER_MODES,
  SETTINGS,
  resolveSettings,
  settingsFromEnv,
  type KvRouterSettings,
  type RouterMode,
} from "./config.js";
export {
  ACCEPTED,
  RouterConfigError,
  readSettings,
  schemas,
  setting,
  validateSettings,
  type Environment,
  type Setting,
  type SettingKind,
} from "./settings-table.js";
