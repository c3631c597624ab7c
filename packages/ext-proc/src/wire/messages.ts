/**
 * The ext_proc messages as plain objects, in the shape `@grpc/proto-loader` produces with
 * `keepCase: true, oneofs: true, defaults: false`: snake_case field names as in the .proto files, bytes
 * as `Buffer` (any `Uint8Array` when sending), absent fields absent, and the name of the set oneof member
 * in a virtual field (`request` / `response` / `mutation`). `google.protobuf.Struct` values are the
 * exception: protobufjs defines them with camelCase names (`stringValue`, `listValue`, ...).
 */

/** `ProcessingMode.BodySendMode` numbers. */
export const BodySendMode = {
  NONE: 0,
  STREAMED: 1,
  BUFFERED: 2,
  BUFFERED_PARTIAL: 3,
  FULL_DUPLEX_STREAMED: 4,
  GRPC: 5,
} as const;

/** `ProcessingMode.HeaderSendMode` numbers. */
export const HeaderSendMode = { DEFAULT: 0, SEND: 1, SKIP: 2 } as const;

/** `config.core.v3.HeaderValueOption.HeaderAppendAction` numbers. */
export const HeaderAppendAction = {
  APPEND_IF_EXISTS_OR_ADD: 0,
  ADD_IF_ABSENT: 1,
  OVERWRITE_IF_EXISTS_OR_ADD: 2,
  OVERWRITE_IF_EXISTS: 3,
} as const;

export interface WireHeaderValue {
  key?: string;
  value?: string;
  raw_value?: Uint8Array;
}

export interface WireHeaderMap {
  headers?: WireHeaderValue[];
}

export interface WireHeaderValueOption {
  header?: WireHeaderValue;
  /** Deprecated `google.protobuf.BoolValue`; Envoy's ext_proc still reads it (true appends). */
  append?: { value?: boolean };
  append_action?: number;
  keep_empty_value?: boolean;
}

/** `google.protobuf.Value` as protobufjs represents it (camelCase members, `kind` names the set one). */
export interface WireValue {
  nullValue?: number | string;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: WireStruct;
  listValue?: { values?: WireValue[] };
  kind?: string;
}

export interface WireStruct {
  fields?: Record<string, WireValue>;
}

export interface WireMetadata {
  filter_metadata?: Record<string, WireStruct>;
}

export interface WireProtocolConfiguration {
  request_body_mode?: number;
  response_body_mode?: number;
  send_body_without_waiting_for_header_response?: boolean;
}

export interface WireHttpHeaders {
  headers?: WireHeaderMap;
  end_of_stream?: boolean;
}

export interface WireHttpBody {
  body?: Uint8Array;
  end_of_stream?: boolean;
  end_of_stream_without_message?: boolean;
  grpc_message_compressed?: boolean;
}

export interface WireHttpTrailers {
  trailers?: WireHeaderMap;
}

export type ProcessingRequestPhase =
  "request_headers" | "response_headers" | "request_body" | "response_body" | "request_trailers" | "response_trailers";

export interface ProcessingRequest {
  request_headers?: WireHttpHeaders;
  response_headers?: WireHttpHeaders;
  request_body?: WireHttpBody;
  response_body?: WireHttpBody;
  request_trailers?: WireHttpTrailers;
  response_trailers?: WireHttpTrailers;
  /** Which member of the `request` oneof is set (present on decoded messages). */
  request?: ProcessingRequestPhase;
  metadata_context?: WireMetadata;
  attributes?: Record<string, WireStruct>;
  observability_mode?: boolean;
  protocol_config?: WireProtocolConfiguration;
}

export interface WireHeaderMutation {
  set_headers?: WireHeaderValueOption[];
  remove_headers?: string[];
}

export interface WireStreamedBodyResponse {
  body?: Uint8Array;
  end_of_stream?: boolean;
}

export interface WireBodyMutation {
  body?: Uint8Array;
  clear_body?: boolean;
  streamed_response?: WireStreamedBodyResponse;
  mutation?: "body" | "clear_body" | "streamed_response";
}

export interface WireCommonResponse {
  status?: number;
  header_mutation?: WireHeaderMutation;
  body_mutation?: WireBodyMutation;
  trailers?: WireHeaderMap;
  clear_route_cache?: boolean;
}

export interface WireHeadersResponse {
  response?: WireCommonResponse;
}

export interface WireBodyResponse {
  response?: WireCommonResponse;
}

export interface WireTrailersResponse {
  header_mutation?: WireHeaderMutation;
}

export interface WireImmediateResponse {
  status?: { code?: number };
  headers?: WireHeaderMutation;
  body?: Uint8Array;
  grpc_status?: { status?: number };
  details?: string;
}

export type ProcessingResponseKind =
  | "request_headers"
  | "response_headers"
  | "request_body"
  | "response_body"
  | "request_trailers"
  | "response_trailers"
  | "immediate_response"
  | "streamed_immediate_response";

export interface ProcessingResponse {
  request_headers?: WireHeadersResponse;
  response_headers?: WireHeadersResponse;
  request_body?: WireBodyResponse;
  response_body?: WireBodyResponse;
  request_trailers?: WireTrailersResponse;
  response_trailers?: WireTrailersResponse;
  immediate_response?: WireImmediateResponse;
  streamed_immediate_response?: Record<string, unknown>;
  /** Which member of the `response` oneof is set (present on decoded messages). */
  response?: ProcessingResponseKind;
  dynamic_metadata?: WireStruct;
  mode_override?: Record<string, unknown>;
  override_message_timeout?: { seconds?: string | number; nanos?: number };
  request_drain?: boolean;
}
