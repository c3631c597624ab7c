export { RouterService } from "./service.js";
export type {
  RouterServiceOptions,
  ServiceDecision,
  ServiceStatus,
  ServiceWorker,
  TokenizedRequest,
  WorkerEventStatus,
} from "./types.js";
export type { BodyHints, ServiceRequest } from "./request.js";
export type { ActiveSequenceEvent } from "@dynamo/kv-router";
export {
  BlockSizeMismatchError,
  DuplicateRequestError,
  InvalidRequestError,
  NoCandidatesError,
  NotReadyError,
  OverloadedError,
  PrefillUnavailableError,
  QueueOverloadedError,
  RouteError,
  TokenizerUnavailableError,
  UnknownModelError,
  type RouteErrorCode,
} from "./errors.js";
export { DEFAULT_SERVICE_SETTINGS, SERVICE_SETTINGS, serviceSettingsFromEnv, type ServiceSettings } from "./config.js";
export { NatsConnectError, connectNats, natsConnectionOptions, type NatsSettings } from "./nats-connection.js";
