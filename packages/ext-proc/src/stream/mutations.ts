import type { RouteAccepted } from "../types.js";
import { setHeaderOption } from "../wire/headers.js";
import type { ProcessingResponse, WireHeaderValueOption } from "../wire/messages.js";
import { DESTINATION_ENDPOINT_KEY, LB_NAMESPACE } from "../wire/metadata.js";
import { jsonToStruct } from "../wire/struct.js";

/** Largest body chunk sent back to the data plane (under Envoy's 64 KB recommendation). */
export const BODY_CHUNK_BYTES = 62_000;

/** Header carrying the prefill endpoint for disaggregated serving. */
export const PREFILLER_HOST_PORT_HEADER = "x-prefiller-host-port";

/**
 * Headers a client could send to steer which worker serves it. The router never sees them, and they are
 * removed from the forwarded request unless the picker sets them itself.
 */
export const CLIENT_ROUTING_HEADERS: readonly string[] = [
  "x-worker-instance-id",
  "x-prefill-instance-id",
  "x-dynamo-worker-instance-id",
  "x-dynamo-prefill-instance-id",
  "x-dynamo-dp-rank",
  "x-dynamo-prefill-dp-rank",
  "x-dynamo-routing-mode",
  PREFILLER_HOST_PORT_HEADER,
];

/** GAIE control headers: readable by the router, always removed before forwarding. */
export const GATEWAY_CONTROL_HEADERS: readonly string[] = [
  "x-gateway-inference-fairness-id",
  "x-gateway-inference-objective",
  "x-gateway-model-name-rewrite",
  "x-gateway-destination-endpoint-subset",
  "x-gateway-destination-endpoint-served",
];

/** Names only the state machine sets; a router's headers never carry them. */
const SYSTEM_OWNED = new Set([
  ...GATEWAY_CONTROL_HEADERS,
  DESTINATION_ENDPOINT_KEY,
  PREFILLER_HOST_PORT_HEADER,
  "content-length",
]);

/** Headers dropped from what the router sees. */
export const HIDDEN_FROM_ROUTER: ReadonlySet<string> = new Set([...CLIENT_ROUTING_HEADERS, DESTINATION_ENDPOINT_KEY]);

const TOKEN = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
const BAD_VALUE = /[\r\n\0]/;

/** Whether a router-supplied header may be set (valid, not reserved, not system owned). */
function settable(name: string, value: string): boolean {
  return TOKEN.test(name) && !name.startsWith("x-envoy") && !SYSTEM_OWNED.has(name) && !BAD_VALUE.test(value);
}

/**
 * The request-headers response sent once the pick is made: destination first, then the router's
 * headers, then the prefill address; removal of every client-steerable header the picker did not set
 * and of the GAIE controls; `clear_route_cache`; `envoy.lb` metadata equal to the destination header.
 */
export function requestHeadersResponse(decision: RouteAccepted): ProcessingResponse {
  const destination = decision.endpoints.join(",");
  const setHeaders: WireHeaderValueOption[] = [setHeaderOption(DESTINATION_ENDPOINT_KEY, destination)];
  const setNames = new Set<string>([DESTINATION_ENDPOINT_KEY]);
  for (const [rawName, value] of Object.entries(decision.headers ?? {})) {
    const name = rawName.toLowerCase();
    if (setNames.has(name) || !settable(name, value)) continue;
    setHeaders.push(setHeaderOption(name, value));
    setNames.add(name);
  }
  if (decision.prefillEndpoint !== undefined && decision.prefillEndpoint !== "") {
    setHeaders.push(setHeaderOption(PREFILLER_HOST_PORT_HEADER, decision.prefillEndpoint));
    setNames.add(PREFILLER_HOST_PORT_HEADER);
  }
  const removeHeaders = [...GATEWAY_CONTROL_HEADERS, ...CLIENT_ROUTING_HEADERS].filter((name) => !setNames.has(name));
  return {
    request_headers: {
      response: {
        header_mutation: { set_headers: setHeaders, remove_headers: removeHeaders },
        clear_route_cache: true,
      },
    },
    dynamic_metadata: jsonToStruct({ [LB_NAMESPACE]: { [DESTINATION_ENDPOINT_KEY]: destination } }),
  };
}

/**
 * A body as streamed body responses of at most `BODY_CHUNK_BYTES` each; `endOfStream` goes on the last
 * one only. An empty body is one empty message (when it ends the stream) or none.
 */
export function streamedBodyResponses(
  direction: "request_body" | "response_body",
  body: Buffer,
  endOfStream: boolean,
): ProcessingResponse[] {
  const responses: ProcessingResponse[] = [];
  if (body.length === 0) {
    if (endOfStream) responses.push(streamedBody(direction, body, true));
    return responses;
  }
  for (let offset = 0; offset < body.length; offset += BODY_CHUNK_BYTES) {
    const end = Math.min(offset + BODY_CHUNK_BYTES, body.length);
    responses.push(streamedBody(direction, body.subarray(offset, end), endOfStream && end === body.length));
  }
  return responses;
}

function streamedBody(direction: "request_body" | "response_body", body: Buffer, endOfStream: boolean) {
  return {
    [direction]: { response: { body_mutation: { streamed_response: { body, end_of_stream: endOfStream } } } },
  } satisfies ProcessingResponse;
}
