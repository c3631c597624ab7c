import { reject, type RouteRejected } from "@dynamo/ext-proc";
import type { RouteError } from "@dynamo/router-service";

/**
 * The answer to a request the router service could not route (epp-protocol §8): the status of the
 * Dynamo column and a message that says what to fix. Internal router text is not returned, except the
 * tokenizer's description of what is wrong with the request body.
 */
export function rejectionOf(error: RouteError): RouteRejected {
  switch (error.code) {
    case "not_ready":
      return reject(
        "routing_failed",
        "endpoint picker not ready: worker discovery has not synced yet (no routable worker); retry shortly",
      );
    case "overloaded":
      return reject("all_busy", "All workers are busy");
    case "queue_overloaded":
      return reject(
        "router_overloaded",
        `All workers are busy and the router queue cannot take the request: ${error.message}`,
        {
          retryAfterSecs: 1,
        },
      );
    case "no_candidates":
      return reject("no_endpoints", "no endpoints available");
    case "prefill_unavailable":
      return reject(
        "no_prefill_workers",
        "no prefill worker available while disaggregated serving is enforced (DYN_ENFORCE_DISAGG=true)",
      );
    case "invalid_request":
      return reject("invalid_request", `invalid request: ${error.message}`);
    case "unknown_model":
    case "tokenizer_unavailable":
      return reject("tokenizer_unavailable", `tokenizer unavailable: ${error.message}`);
    case "duplicate_request":
      return reject("conflict", "request id already booked");
  }
}
