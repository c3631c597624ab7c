import { BodySendMode, type ProcessingRequest } from "../wire/messages.js";

const MODE_NAMES = Object.fromEntries(Object.entries(BodySendMode).map(([name, value]) => [value, name])) as Record<
  number,
  string
>;

function modeName(mode: number | undefined): string {
  const value = mode ?? BodySendMode.NONE;
  return MODE_NAMES[value] ?? `unknown(${value})`;
}

/**
 * Checks the data plane's processing mode from the first message that carries `protocol_config`.
 * Accepted iff both body modes are FULL_DUPLEX_STREAMED, whatever
 * `send_body_without_waiting_for_header_response` says (Envoy 1.38 and agentgateway send false there).
 * Returns undefined when acceptable, else the FAILED_PRECONDITION message naming what to change.
 * `observability_mode` is rejected too: the picker's answers would be ignored.
 */
export function protocolProblem(message: ProcessingRequest): string | undefined {
  if (message.observability_mode === true) {
    return (
      "ext_proc observability_mode is on, so the gateway ignores the endpoint picker's answers; " +
      "set observability_mode: false in the gateway's ext_proc filter"
    );
  }
  const config = message.protocol_config;
  if (config === undefined) return undefined;
  const request = config.request_body_mode ?? BodySendMode.NONE;
  const response = config.response_body_mode ?? BodySendMode.NONE;
  if (request === BodySendMode.FULL_DUPLEX_STREAMED && response === BodySendMode.FULL_DUPLEX_STREAMED) return undefined;
  const fields: string[] = [];
  if (request !== BodySendMode.FULL_DUPLEX_STREAMED) fields.push("processing_mode.request_body_mode");
  if (response !== BodySendMode.FULL_DUPLEX_STREAMED) fields.push("processing_mode.response_body_mode");
  return (
    `unsupported ext_proc processing mode: received request_body_mode=${modeName(request)}, ` +
    `response_body_mode=${modeName(response)}; set ${fields.join(" and ")} to FULL_DUPLEX_STREAMED ` +
    "(with request_trailer_mode and response_trailer_mode SEND) in the gateway's ext_proc filter"
  );
}
