import type { RejectionReason, RouteRejected } from "../types.js";
import { setHeaderOption } from "../wire/headers.js";
import type { ProcessingResponse } from "../wire/messages.js";

/** HTTP status of each rejection reason (Dynamo's EPP mapping). */
export const REJECTION_STATUS: Readonly<Record<RejectionReason, number>> = {
  no_endpoints: 503,
  routing_failed: 503,
  invalid_request: 400,
  metadata_too_large: 431,
  tokenizer_unavailable: 503,
  tokenizer_timeout: 504,
  tokenizer_upstream_error: 502,
  overloaded: 503,
  all_busy: 503,
  no_prefill_workers: 503,
  router_overloaded: 429,
  queue_rejected: 503,
  router_unavailable: 503,
  conflict: 409,
  bad_request: 400,
  internal: 500,
  shed: 429,
  evicted: 429,
  body_too_large: 413,
};

/** A rejection decision (for routers and the state machine alike). */
export function reject(
  reason: RejectionReason,
  message: string,
  options: { retryAfterSecs?: number; status?: number } = {},
): RouteRejected {
  return { type: "reject", reason, message, ...options };
}

/** The HTTP status a rejection is answered with. */
export function rejectionStatus(rejection: RouteRejected): number {
  const status = rejection.status ?? REJECTION_STATUS[rejection.reason];
  return Number.isInteger(status) && status >= 200 && status <= 599 ? status : 500;
}

/**
 * The ImmediateResponse for a rejection: the status always set (Envoy substitutes 200 otherwise),
 * a plain-text body, `retry-after` when asked for.
 */
export function immediateResponseFor(rejection: RouteRejected): ProcessingResponse {
  const setHeaders = [setHeaderOption("content-type", "text/plain; charset=utf-8")];
  if (rejection.retryAfterSecs !== undefined && rejection.retryAfterSecs > 0) {
    setHeaders.push(setHeaderOption("retry-after", String(Math.ceil(rejection.retryAfterSecs))));
  }
  return {
    immediate_response: {
      status: { code: rejectionStatus(rejection) },
      headers: { set_headers: setHeaders },
      body: Buffer.from(rejection.message, "utf8"),
      details: `endpoint_picker_${rejection.reason}`,
    },
  };
}
