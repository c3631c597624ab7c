export { Frontend } from "./server.js";
export { frontendConfig, FrontendConfigError, USAGE, type FrontendConfig } from "./config.js";
export { routingFields, engineHeaders, ROUTING_HEADERS } from "./headers.js";
export { resolveRoute, isRequestError, type RouteMetadata } from "./route.js";
export { engineRequest, prefillBody, decodeBody, type EngineRequest } from "./engine-request.js";
export { completionToChat, completionChunkMapper } from "./chat-shape.js";
export { SseRewriter, withCachedTokens } from "./sse.js";
export type { FrontedWorker, RequestError, RequestKind, Route, RoutingFields } from "./types.js";
