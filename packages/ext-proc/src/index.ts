export type {
  BodyRewrite,
  ExtProcLogger,
  RejectionReason,
  RequestBody,
  RequestEndReason,
  RequestLifecycle,
  RequestOutcome,
  RequestRouter,
  ResponseStart,
  RouteAccepted,
  RouteDecision,
  RouteRejected,
  RouteRequest,
  StreamOutcome,
  StreamSummary,
  Usage,
} from "./types.js";
export * from "./wire/messages.js";
export {
  EXT_PROC_SERVICE_NAME,
  PROCESS_METHOD_PATH,
  PROTO_LOADER_OPTIONS,
  decodeProcessingRequest,
  decodeProcessingResponse,
  encodeProcessingRequest,
  encodeProcessingResponse,
  extProcPackageDefinition,
  externalProcessorService,
  projectProtoDir,
  protoIncludeDirs,
  upstreamProtoRoot,
  type ProcessMethodDefinition,
} from "./wire/proto.js";
export { HeaderList, headerValueText, setHeaderOption, type HeaderEntry } from "./wire/headers.js";
export {
  jsonToStruct,
  jsonToValue,
  structToJson,
  valueToJson,
  type JsonObject,
  type JsonValue,
} from "./wire/struct.js";
export {
  DESTINATION_ENDPOINT_KEY,
  EndpointSubset,
  LB_NAMESPACE,
  SERVED_ENDPOINT_KEY,
  SUBSET_HINT_KEY,
  SUBSET_HINT_NAMESPACE,
  filterMetadataOf,
  formatHostPort,
  parseHostPort,
  servedEndpointOf,
  subsetHintOf,
  type FilterMetadata,
  type HostPort,
} from "./wire/metadata.js";
export { protocolProblem } from "./stream/protocol.js";
export { REJECTION_STATUS, immediateResponseFor, reject, rejectionStatus } from "./stream/rejection.js";
export {
  BODY_CHUNK_BYTES,
  CLIENT_ROUTING_HEADERS,
  GATEWAY_CONTROL_HEADERS,
  PREFILLER_HOST_PORT_HEADER,
  requestHeadersResponse,
  streamedBodyResponses,
} from "./stream/mutations.js";
export { parseJsonBody, rewriteBody, type ParsedBody, type RewriteResult } from "./stream/body.js";
export { parseUsage, usageFromJsonTail } from "./stream/usage.js";
export { ResponseBodyObserver, USAGE_TAIL_BYTES } from "./stream/response-body.js";
export {
  ByteBudget,
  CONFORMANCE_SELECTION_HEADER,
  CONFORMANCE_SERVED_HEADER,
  DEFAULT_MAX_REQUEST_BODY_BYTES,
  ExtProcStream,
  GrpcCode,
  InflightLimit,
  type RouteGate,
  type StreamOptions,
  type StreamSink,
} from "./stream/stream.js";
export {
  DEFAULT_EXT_PROC_PORT,
  DEFAULT_HEALTH_PORT,
  DEFAULT_MAX_BUFFERED_BODY_BYTES,
  DEFAULT_MAX_INFLIGHT_ROUTES,
  DEFAULT_STREAM_RESET_LIMIT,
  ExtProcServer,
  type ExtProcServerOptions,
  type ShutdownOptions,
} from "./server/server.js";
export { HEALTH_SERVICE_NAMES, HealthStatus } from "./server/health.js";
export { selfSignedCertificate, type TlsMaterial } from "./server/tls.js";
export {
  ENVOY_PROTOCOL_CONFIG,
  ExtProcClient,
  ExtProcExchange,
  type BodyInput,
  type ExchangeOptions,
  type ExtProcClientOptions,
  type HeaderInput,
  type PhaseResult,
  type RequestContinue,
  type ResponseContinue,
} from "./client/client.js";
export { applyHeaderMutation, MutationError } from "./client/envoy-mutations.js";
export type { StreamStatus } from "./client/inbox.js";
export { RoundRobinRouter, type RoundRobinRouterOptions } from "./routers/round-robin.js";
