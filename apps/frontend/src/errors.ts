import type { RequestError } from "./types.js";

/** Malformed or contradictory endpoint-picker metadata (502 `invalid_epp_metadata`). */
export function invalidEppMetadata(message: string): RequestError {
  return { status: 502, type: "bad_gateway", code: "invalid_epp_metadata", message };
}

/** A well-formed worker id this sidecar cannot route to (503). */
export function workerNotServed(message: string): RequestError {
  return { status: 503, type: "service_unavailable", code: "worker_not_served", message };
}

/** A client error in the request itself (400). */
export function invalidRequest(message: string, code = "invalid_request"): RequestError {
  return { status: 400, type: "invalid_request_error", code, message };
}

/** A request body over `--max-body-bytes` (413). */
export function requestTooLarge(limit: number): RequestError {
  return {
    status: 413,
    type: "invalid_request_error",
    code: "request_too_large",
    message: `the request body exceeds ${limit} bytes (--max-body-bytes)`,
  };
}

/** The engine (or the prefill worker) could not be reached or failed. */
export function engineUnavailable(message: string, code = "engine_unavailable"): RequestError {
  return { status: 503, type: "service_unavailable", code, message };
}

/** The OpenAI error body: `{"error": {"message", "type", "param", "code"}}`. */
export function errorBody(error: RequestError): string {
  return JSON.stringify({ error: { message: error.message, type: error.type, param: null, code: error.code } });
}
