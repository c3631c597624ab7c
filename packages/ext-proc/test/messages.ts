import {
  BodySendMode,
  ExtProcStream,
  HeaderList,
  jsonToStruct,
  type JsonObject,
  type ProcessingRequest,
  type ProcessingResponse,
  type StreamOptions,
  type StreamSink,
  type StreamSummary,
  type WireHeaderMutation,
  type WireProtocolConfiguration,
} from "../src/index.js";
import type { RequestRouter } from "../src/index.js";

export const FULL_DUPLEX: WireProtocolConfiguration = {
  request_body_mode: BodySendMode.FULL_DUPLEX_STREAMED,
  response_body_mode: BodySendMode.FULL_DUPLEX_STREAMED,
  send_body_without_waiting_for_header_response: false,
};

/** Collects what a stream sends. */
export class TestSink implements StreamSink {
  readonly responses: ProcessingResponse[] = [];
  finished: { error?: { code: number; message: string } } | undefined;
  finishCalls = 0;

  send(response: ProcessingResponse): void {
    if (this.finished) throw new Error("send after finish");
    this.responses.push(response);
  }

  finish(error?: { code: number; message: string }): void {
    this.finishCalls++;
    this.finished = error ? { error } : {};
  }

  /** The kinds of the responses sent, in order. */
  kinds(): string[] {
    return this.responses.map((r) => Object.keys(r).find((k) => k !== "dynamic_metadata")!);
  }

  /** The streamed body chunks sent for one direction. */
  bodyChunks(direction: "request_body" | "response_body"): Array<{ body: Buffer; eos: boolean }> {
    return this.responses
      .filter((r) => r[direction] !== undefined)
      .map((r) => {
        const streamed = r[direction]!.response!.body_mutation!.streamed_response!;
        return { body: Buffer.from(streamed.body ?? []), eos: streamed.end_of_stream === true };
      });
  }
}

/** A stream over a test sink, with sequential ids (`s1`, `s2`, ...) and a manual clock. */
export function newStream(router: RequestRouter, options: Partial<StreamOptions> = {}) {
  const sink = new TestSink();
  const summaries: StreamSummary[] = [];
  let id = 0;
  let clock = 0;
  const stream = new ExtProcStream(
    {
      router,
      maxRequestBodyBytes: 1024 * 1024,
      newId: () => `s${++id}`,
      now: () => clock,
      onStreamEnd: (s) => summaries.push(s),
      ...options,
    },
    sink,
  );
  return { stream, sink, summaries, advance: (ms: number) => (clock += ms) };
}

export function requestHeaders(
  headers: Iterable<readonly [string, string]>,
  options: { eos?: boolean; metadata?: Record<string, JsonObject>; protocol?: WireProtocolConfiguration | null } = {},
): ProcessingRequest {
  const message: ProcessingRequest = {
    request_headers: { headers: new HeaderList(headers).toWire(), end_of_stream: options.eos ?? false },
  };
  if (options.protocol !== null) message.protocol_config = options.protocol ?? FULL_DUPLEX;
  if (options.metadata) message.metadata_context = metadataContext(options.metadata);
  return message;
}

export function requestBody(body: Buffer | string, eos: boolean): ProcessingRequest {
  return { request_body: { body: Buffer.from(body), end_of_stream: eos } };
}

export function responseHeaders(
  status: number,
  headers: Array<[string, string]> = [],
  options: { eos?: boolean; metadata?: Record<string, JsonObject> } = {},
): ProcessingRequest {
  const message: ProcessingRequest = {
    response_headers: {
      headers: new HeaderList([[":status", String(status)], ...headers]).toWire(),
      end_of_stream: options.eos ?? false,
    },
  };
  if (options.metadata) message.metadata_context = metadataContext(options.metadata);
  return message;
}

export function responseBody(body: Buffer | string, eos: boolean): ProcessingRequest {
  return { response_body: { body: Buffer.from(body), end_of_stream: eos } };
}

export function metadataContext(metadata: Record<string, JsonObject>) {
  return { filter_metadata: Object.fromEntries(Object.entries(metadata).map(([ns, v]) => [ns, jsonToStruct(v)])) };
}

/** `subset` as the data plane sends it in `envoy.lb.subset_hint`. */
export function subsetHint(endpoints: string[] | string): Record<string, JsonObject> {
  return { "envoy.lb.subset_hint": { "x-gateway-destination-endpoint-subset": endpoints } };
}

/** The headers a mutation sets, as name → value read from `raw_value`. */
export function setHeadersOf(mutation: WireHeaderMutation | undefined): Map<string, string> {
  return new Map(
    (mutation?.set_headers ?? []).map((o) => [o.header!.key!, Buffer.from(o.header!.raw_value ?? []).toString()]),
  );
}
