import type { EndpointSubset, FilterMetadata } from "./wire/metadata.js";
import type { HeaderList } from "./wire/headers.js";

/**
 * What the endpoint picker plugs into the ext_proc state machine: one call per HTTP request, when the
 * request body is complete (or at once for a request without a body). Selection and booking happen
 * inside `route`; everything the response path learns afterwards arrives through the returned
 * `RequestLifecycle`.
 */
export interface RequestRouter {
  /**
   * Chooses where the request goes. May return synchronously (the common case: no await between
   * selecting and booking) or a promise (e.g. when tokenizing on a worker pool first). `signal` is
   * aborted when the gateway drops the stream while the decision is pending; a decision returned after
   * that is discarded and its lifecycle, if any, ended with `abandoned`. Throwing (or rejecting) answers
   * the request with HTTP 500.
   */
  route(request: RouteRequest, signal: AbortSignal): RouteDecision | Promise<RouteDecision>;
}

/** The request as the router sees it. */
export interface RouteRequest {
  /** Unique per gRPC stream (UUID v4): use it as the booking id, never `requestId`. */
  readonly streamId: string;
  /** `x-request-id` when non-empty, else a fresh UUID v4. */
  readonly requestId: string;
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  /**
   * Request headers in order, duplicates kept, without the routing headers a client could use to steer
   * the pick (`x-prefiller-host-port`, `x-worker-instance-id`, `x-dynamo-*-instance-id`, DP ranks,
   * routing mode, `x-gateway-destination-endpoint`). GAIE controls such as
   * `x-gateway-inference-objective` remain readable; they are stripped before forwarding.
   */
  readonly headers: HeaderList;
  /** Absent for a request without a body (e.g. `GET /v1/models`): pick any ready endpoint, book nothing. */
  readonly body?: RequestBody;
  /**
   * Endpoints the request may go to: the gateway's subset hint, narrowed by the conformance header
   * `test-epp-endpoint-selection` when conformance hooks are on. Absent: the whole pool. An endpoint
   * outside it is never used (the state machine answers 503 if the decision names none inside).
   */
  readonly subset?: EndpointSubset;
  /** The latest `metadata_context.filter_metadata`, by namespace. */
  readonly filterMetadata: FilterMetadata;
}

export interface RequestBody {
  /** The complete body as received. */
  readonly bytes: Buffer;
  /** The body parsed as JSON (valid UTF-8 and valid JSON are checked before `route`). */
  readonly json: unknown;
  /** The body as text (the UTF-8 decoding `json` was parsed from), when the state machine decoded it. */
  readonly text?: string;
}

export type RouteDecision = RouteAccepted | RouteRejected;

export interface RouteAccepted {
  readonly type: "route";
  /**
   * Chosen endpoints (`ip:port`, IPv6 as `[addr]:port`), best first; sent comma-joined in
   * `x-gateway-destination-endpoint` and `envoy.lb` metadata (later entries are fallbacks).
   */
  readonly endpoints: readonly string[];
  /**
   * Routing headers to set (e.g. `x-dynamo-worker-instance-id`, `x-worker-instance-id`,
   * `x-dynamo-dp-rank`, `x-dynamo-routing-mode`). Names starting with `:` or `x-envoy` and the names the
   * state machine owns (destination, prefill address, GAIE controls, `content-length`) are ignored.
   */
  readonly headers?: Readonly<Record<string, string>>;
  /** Prefill endpoint `host:port` for disaggregated serving: sent as `x-prefiller-host-port`. */
  readonly prefillEndpoint?: string;
  /** How to change the body; absent keeps it as received. Ignored for requests without a body. */
  readonly body?: BodyRewrite;
  /** Response-path callbacks of a booked request; absent when nothing was booked. */
  readonly lifecycle?: RequestLifecycle;
}

/**
 * `tokenData`: set `nvext.token_data` to these ids, keeping every other field (skipped, with the
 * original bytes forwarded, when the body or its `nvext` is not a JSON object). `replace`: send these
 * bytes instead.
 */
export type BodyRewrite = { readonly tokenData: readonly number[] | Uint32Array } | { readonly replace: Uint8Array };

export interface RouteRejected {
  readonly type: "reject";
  readonly reason: RejectionReason;
  /** Plain text returned to the client: say what to fix. */
  readonly message: string;
  /** Seconds for `retry-after` (sent when > 0). */
  readonly retryAfterSecs?: number;
  /** Overrides the status `REJECTION_STATUS[reason]`. */
  readonly status?: number;
}

/** Why a request was not routed; each maps to an HTTP status (`REJECTION_STATUS`). */
export type RejectionReason =
  | "no_endpoints"
  | "routing_failed"
  | "invalid_request"
  | "metadata_too_large"
  | "tokenizer_unavailable"
  | "tokenizer_timeout"
  | "tokenizer_upstream_error"
  | "overloaded"
  | "all_busy"
  | "no_prefill_workers"
  | "router_overloaded"
  | "queue_rejected"
  | "router_unavailable"
  | "conflict"
  | "bad_request"
  | "internal"
  | "shed"
  | "evicted"
  | "body_too_large";

/**
 * Response-path callbacks of one routed request. Every callback is best effort: exceptions and
 * rejected promises are logged and never affect the stream; none of them is awaited.
 */
export interface RequestLifecycle {
  /** Upstream response headers arrived (status, SSE or not, the served endpoint the data plane reported). */
  responseStarted?(info: ResponseStart): void;
  /**
   * First non-empty response body chunk (decode has started): release the prefill booking and mark
   * prefill complete. Called at most once, after that chunk has been forwarded.
   */
  prefillComplete?(): void;
  /** A non-empty response body chunk was forwarded (the response is making progress). */
  responseChunk?(): void;
  /** The count of generated tokens seen in the SSE stream grew (at most once per body chunk). */
  outputProgress?(generatedTokens: number): void;
  /**
   * Exactly once, whatever happens: free the booking. After `abandoned` (the gateway left while the
   * decision was pending) no other callback has fired.
   */
  end(outcome: RequestOutcome): void;
}

export interface ResponseStart {
  /** HTTP status of the upstream response (0 when `:status` is missing). */
  readonly status: number;
  /** `content-type` contains `text/event-stream`. */
  readonly streaming: boolean;
  /** Endpoint reported in `envoy.lb` / `x-gateway-destination-endpoint-served`, if any. */
  readonly servedEndpoint?: string;
  /** The served endpoint is known and is not the first chosen endpoint. */
  readonly servedMismatch: boolean;
}

/** Token usage from the response (`usage`, incl. `prompt_tokens_details.cached_tokens`). */
export interface Usage {
  readonly promptTokens?: number;
  readonly completionTokens?: number;
  readonly totalTokens?: number;
  readonly cachedTokens?: number;
}

export type RequestEndReason =
  /** The response body (or its trailers) ended. */
  | "complete"
  /** The stream ended before the response did (client gone, gateway reset). */
  | "cancelled"
  /** The stream failed (transport error, protocol violation, the processor's own error). */
  | "error"
  /** The stream ended while the decision was still pending. */
  | "abandoned";

export interface RequestOutcome {
  readonly reason: RequestEndReason;
  /** Upstream HTTP status, when response headers arrived. */
  readonly status?: number;
  readonly usage?: Usage;
  /** Generated tokens counted from the SSE stream (0 for non-streaming responses). */
  readonly generatedTokens: number;
  readonly servedEndpoint?: string;
  /** Milliseconds from the decision to the first non-empty response chunk. */
  readonly firstChunkMs?: number;
  /** Milliseconds from the decision to this call. */
  readonly durationMs: number;
}

/** Outcome classes of a whole stream, for metrics (`dynamo_epp_requests_total{outcome}`). */
export type StreamOutcome = "response_eos" | "upstream_http_error" | "early_reject" | "ext_proc_error" | "incomplete";

/** One line per finished stream, for metrics and the decision log. */
export interface StreamSummary {
  readonly streamId: string;
  readonly requestId?: string;
  readonly outcome: StreamOutcome;
  /** The request had no body (routed from its headers alone). */
  readonly headerOnly: boolean;
  /** Endpoints chosen, when routed. */
  readonly endpoints?: readonly string[];
  /** HTTP status of an ImmediateResponse the processor sent, with the reason. */
  readonly rejection?: { readonly status: number; readonly reason: RejectionReason; readonly message: string };
  /** Upstream response status. */
  readonly responseStatus?: number;
  /** Endpoint the data plane reported as having served the request. */
  readonly servedEndpoint?: string;
  /** The served endpoint is known and is not the first chosen endpoint (a mismatch to count). */
  readonly servedMismatch?: boolean;
  /** Milliseconds from the decision to the first non-empty response chunk. */
  readonly firstChunkMs?: number;
  readonly usage?: Usage;
  /** Milliseconds spent in `route` (from body end to decision). */
  readonly routeMs?: number;
  /** Milliseconds from the first message to the end of the stream. */
  readonly durationMs: number;
  /** gRPC status the processor ended the stream with, when not OK. */
  readonly grpcError?: { readonly code: number; readonly message: string };
}

/** The logging surface used (a subset of pino's). */
export interface ExtProcLogger {
  debug(object: object, message?: string): void;
  info(object: object, message?: string): void;
  warn(object: object, message?: string): void;
  error(object: object, message?: string): void;
}
