import type { RouteExplain, RouteRejectReason } from "@dynamo/kv-router";

/** Why a request could not be routed. */
export type RouteErrorCode =
  | "not_ready"
  | "overloaded"
  | "no_candidates"
  | "prefill_unavailable"
  | "invalid_request"
  | "unknown_model"
  | "tokenizer_unavailable"
  | "duplicate_request"
  | "queue_overloaded";

/**
 * A request the service cannot route. Each subclass has a `code` and the HTTP status an endpoint picker
 * answers with (Dynamo's mapping): 503 for capacity and readiness, 400 for bad requests, 404 for unknown
 * models, 409 for a duplicate booking id. Nothing was booked when one is thrown.
 */
export abstract class RouteError extends Error {
  abstract readonly code: RouteErrorCode;
  abstract readonly httpStatus: number;

  constructor(
    message: string,
    /** The candidates considered, when scoring ran (built on first read). */
    readonly explain?: RouteExplain,
  ) {
    super(message);
  }
}

/** The service has not discovered its first workers yet (`DYN_ROUTER_MIN_INITIAL_WORKERS`), or is stopping. */
export class NotReadyError extends RouteError {
  override readonly name = "NotReadyError";
  readonly code = "not_ready";
  readonly httpStatus = 503;
}

/** Every eligible worker (or the pinned one) is over a busy threshold. */
export class OverloadedError extends RouteError {
  override readonly name = "OverloadedError";
  readonly code = "overloaded";
  readonly httpStatus = 503;
}

/** No worker may take the request: none registered, the subset hint matched none, or the pinned one is gone. */
export class NoCandidatesError extends RouteError {
  override readonly name = "NoCandidatesError";
  readonly code = "no_candidates";
  readonly httpStatus = 503;
}

/** Disaggregation is enforced (`DYN_ENFORCE_DISAGG=true`) and no prefill worker can take the request. */
export class PrefillUnavailableError extends RouteError {
  override readonly name = "PrefillUnavailableError";
  readonly code = "prefill_unavailable";
  readonly httpStatus = 503;
}

/** The body is not a request this service can tokenize, or a routing field is out of range. */
export class InvalidRequestError extends RouteError {
  override readonly name = "InvalidRequestError";
  readonly code = "invalid_request";
  readonly httpStatus = 400;
}

/** No tokenizer is known for the model and there is no default model. */
export class UnknownModelError extends RouteError {
  override readonly name = "UnknownModelError";
  readonly code = "unknown_model";
  readonly httpStatus = 404;
}

/** The model's tokenizer files could not be loaded. */
export class TokenizerUnavailableError extends RouteError {
  override readonly name = "TokenizerUnavailableError";
  readonly code = "tokenizer_unavailable";
  readonly httpStatus = 503;
}

/** The request id is already booked. */
export class DuplicateRequestError extends RouteError {
  override readonly name = "DuplicateRequestError";
  readonly code = "duplicate_request";
  readonly httpStatus = 409;
}

/**
 * Every worker stayed over the router queue threshold: the queue was full or the request waited past
 * its deadline (`DYN_ROUTER_QUEUE_MAX_DEPTH`, `DYN_ROUTER_QUEUE_TIMEOUT_SECS`). Load shedding: 429,
 * retry later.
 */
export class QueueOverloadedError extends RouteError {
  override readonly name = "QueueOverloadedError";
  readonly code = "queue_overloaded";
  readonly httpStatus = 429;
}

/**
 * The configured KV block size (`DYN_KV_CACHE_BLOCK_SIZE`) differs from the one in the workers' model
 * cards at start: nothing would ever match. Thrown by `RouterService.start`.
 */
export class BlockSizeMismatchError extends Error {
  override readonly name = "BlockSizeMismatchError";
}

/** The error for a router rejection. */
export function errorOfRejection(reason: RouteRejectReason, message: string, explain?: RouteExplain): RouteError {
  switch (reason) {
    case "overloaded":
    case "pinned_overloaded":
      return new OverloadedError(message, explain);
    case "no_candidates":
    case "pinned_unavailable":
      return new NoCandidatesError(message, explain);
    case "prefill_unavailable":
      return new PrefillUnavailableError(message, explain);
    case "duplicate_request":
      return new DuplicateRequestError(message, explain);
    case "not_ready":
      return new NotReadyError(message, explain);
    case "invalid_request":
      return new InvalidRequestError(message, explain);
    case "queue_overloaded":
      return new QueueOverloadedError(message, explain);
  }
}
