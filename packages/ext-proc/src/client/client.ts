import { isIP } from "node:net";
import {
  Client,
  credentials,
  type ChannelCredentials,
  type ChannelOptions,
  type ClientDuplexStream,
} from "@grpc/grpc-js";
import { HeaderList } from "../wire/headers.js";
import {
  BodySendMode,
  type ProcessingRequest,
  type ProcessingResponse,
  type WireProtocolConfiguration,
} from "../wire/messages.js";
import { PROCESS_METHOD_PATH, externalProcessorService } from "../wire/proto.js";
import { jsonToStruct, structToJson, type JsonObject } from "../wire/struct.js";
import { applyHeaderMutation, MutationError } from "./envoy-mutations.js";
import { Inbox, type StreamStatus } from "./inbox.js";

/** Headers as a `HeaderList` or (name, value) pairs. */
export type HeaderInput = HeaderList | Iterable<readonly [string, string]>;
/** A body given whole or as chunks. */
export type BodyInput = Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

/** What Envoy 1.38 and agentgateway send: full duplex both ways, and the flag left false. */
export const ENVOY_PROTOCOL_CONFIG: Required<WireProtocolConfiguration> = {
  request_body_mode: BodySendMode.FULL_DUPLEX_STREAMED,
  response_body_mode: BodySendMode.FULL_DUPLEX_STREAMED,
  send_body_without_waiting_for_header_response: false,
};

export interface ExtProcClientOptions {
  /** `host:port` of the ext_proc server. */
  target: string;
  /**
   * `false` (default): plaintext h2c. `true`: TLS without verifying the server certificate (what
   * gateways do with the picker's self-signed one). `{ ca }`: TLS verified against that CA.
   */
  tls?: boolean | { ca: string | Buffer };
  /** `protocol_config` sent in the first message (default `ENVOY_PROTOCOL_CONFIG`); `null` sends none (Envoy < 1.32). */
  protocolConfig?: WireProtocolConfiguration | null;
  /** Size of the request body chunks sent (default 16 KiB, Envoy's usual buffer slice). */
  chunkBytes?: number;
  /**
   * How `close` ends a stream: `reset` (default, Envoy's default) half-closes then resets it; `graceful`
   * (Envoy's `ext_proc_graceful_grpc_close`) half-closes and lets the server end it. Node servers before
   * 22.11 drop a connection that resets more than 1000 streams faster than 33/s: use `graceful` for load
   * against such a server.
   */
  closeMode?: "reset" | "graceful";
  channelOptions?: ChannelOptions;
}

export interface ExchangeOptions {
  /** `metadata_context.filter_metadata` sent with every message (e.g. the subset hint). */
  filterMetadata?: Record<string, JsonObject>;
}

/** Result of a phase, as the data plane acts on it. */
export type PhaseResult<T> =
  | ({ type: "continue" } & T)
  /** The processor answered the client itself. */
  | { type: "immediate"; status: number; headers: HeaderList; body: Buffer; details: string }
  /** The exchange failed; Envoy answers 500 (fail-closed). */
  | { type: "error"; message: string; grpcCode?: number };

export interface RequestContinue {
  /** Request headers after the processor's mutations. */
  headers: HeaderList;
  /** The body to forward (after mutation); undefined for a request without a body. */
  body: Buffer | undefined;
  /** Dynamic metadata set by the processor, by namespace. */
  dynamicMetadata: Record<string, JsonObject>;
  clearRouteCache: boolean;
}

export interface ResponseContinue {
  headers: HeaderList;
}

/** An ext_proc client that behaves like Envoy's filter in FULL_DUPLEX_STREAMED mode. */
export class ExtProcClient {
  private readonly client: Client;

  constructor(readonly options: ExtProcClientOptions) {
    const tls = options.tls ?? false;
    const channelOptions: ChannelOptions = { ...options.channelOptions };
    // SNI cannot carry an IP address: name the picker's certificate (SAN localhost) instead.
    if (tls !== false && isIpLiteral(hostOf(options.target)) && !("grpc.ssl_target_name_override" in channelOptions)) {
      channelOptions["grpc.ssl_target_name_override"] = "localhost";
    }
    this.client = new Client(options.target, channelCredentials(tls), channelOptions);
  }

  /** Opens one stream for one HTTP request and its response. */
  open(options: ExchangeOptions = {}): ExtProcExchange {
    const method = externalProcessorService().Process;
    const call = this.client.makeBidiStreamRequest(
      PROCESS_METHOD_PATH,
      method.requestSerialize,
      method.responseDeserialize,
    );
    return new ExtProcExchange(call, this.options, options);
  }

  /** Resolves once the channel is connected (or rejects after `timeoutMs`). */
  waitForReady(timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) =>
      this.client.waitForReady(Date.now() + timeoutMs, (error) => (error ? reject(error) : resolve())),
    );
  }

  close(): void {
    this.client.close();
  }
}

function isIpLiteral(host: string): boolean {
  return isIP(host) !== 0;
}

function hostOf(target: string): string {
  const withoutScheme = target.replace(/^[a-z0-9+.-]+:\/\/\/?/i, "");
  if (withoutScheme.startsWith("[")) return withoutScheme.slice(1, withoutScheme.indexOf("]"));
  const colon = withoutScheme.lastIndexOf(":");
  return colon > 0 && withoutScheme.indexOf(":") === colon ? withoutScheme.slice(0, colon) : withoutScheme;
}

function channelCredentials(tls: NonNullable<ExtProcClientOptions["tls"]>): ChannelCredentials {
  if (tls === false) return credentials.createInsecure();
  if (tls === true) return credentials.createSsl(null, null, null, { rejectUnauthorized: false });
  return credentials.createSsl(Buffer.from(tls.ca));
}

class PhaseFailure extends Error {
  constructor(readonly result: Exclude<PhaseResult<never>, { type: "continue" }>) {
    super(result.type === "error" ? result.message : `immediate response ${result.status}`);
  }
}

/**
 * One ext_proc stream. Request phase first (`processRequest`), then the response phases
 * (`processResponseHeaders`, `processResponseBody`), then `close` (half-close and reset, as Envoy does).
 */
export class ExtProcExchange {
  private readonly inbox = new Inbox();
  private filterMetadata: Record<string, JsonObject>;
  private first = true;
  private closed = false;
  private readonly dynamicMetadata: Record<string, JsonObject> = {};

  constructor(
    private readonly call: ClientDuplexStream<ProcessingRequest, ProcessingResponse>,
    private readonly clientOptions: ExtProcClientOptions,
    options: ExchangeOptions,
  ) {
    this.filterMetadata = { ...options.filterMetadata };
    call.on("data", (message: ProcessingResponse) => this.inbox.push(message));
    call.on("status", (status: StreamStatus) => this.inbox.end({ code: status.code, details: status.details }));
    call.on("error", (error: Error & { code?: number; details?: string }) =>
      this.inbox.end({ code: error.code ?? 2, details: error.details ?? error.message }),
    );
  }

  /** The end status of the stream, once the processor has closed it. */
  get status(): StreamStatus | undefined {
    return this.inbox.ended;
  }

  /**
   * Sends request headers, then the body in chunks (without waiting, as full duplex does), and applies
   * the processor's answers: the headers response (mutations, metadata, route-cache flag) and the
   * streamed body. An ImmediateResponse ends the request there.
   */
  async processRequest(request: {
    headers: HeaderInput;
    body?: BodyInput;
    trailers?: HeaderInput;
  }): Promise<PhaseResult<RequestContinue>> {
    const original = toHeaderList(request.headers);
    const hasBody = request.body !== undefined;
    this.send({ request_headers: { headers: original.toWire(), end_of_stream: !hasBody } });
    const sent: Buffer[] = [];
    const pump = hasBody
      ? this.pumpBody("request_body", request.body!, request.trailers, (bytes) => sent.push(bytes))
      : Promise.resolve();
    // A body source that fails (client or upstream gone) resets the stream, as Envoy does.
    pump.catch(() => this.reset());
    try {
      const answer = await this.expect("request_headers");
      if (answer === undefined) {
        // The processor closed cleanly without answering: Envoy goes on with the request unchanged.
        await pump;
        const body = hasBody ? Buffer.concat(sent) : undefined;
        return {
          type: "continue",
          headers: original,
          body,
          dynamicMetadata: this.dynamicMetadata,
          clearRouteCache: false,
        };
      }
      const common = answer.request_headers?.response;
      const headers = applyHeaderMutation(original, common?.header_mutation);
      const clearRouteCache = common?.clear_route_cache === true;
      let body: Buffer | undefined;
      if (hasBody) {
        body = await this.collectStreamedBody("request_body", request.trailers !== undefined);
        await pump;
      }
      return { type: "continue", headers, body, dynamicMetadata: this.dynamicMetadata, clearRouteCache };
    } catch (error) {
      return this.failureOf(error);
    }
  }

  /** Sends the upstream response headers (`:status` added) and applies the processor's mutation. */
  async processResponseHeaders(response: {
    status: number;
    headers: HeaderInput;
    endOfStream?: boolean;
    /** Merged into the filter metadata from now on (e.g. `envoy.lb` served endpoint). */
    filterMetadata?: Record<string, JsonObject>;
  }): Promise<PhaseResult<ResponseContinue>> {
    if (response.filterMetadata) this.filterMetadata = { ...this.filterMetadata, ...response.filterMetadata };
    const headers = new HeaderList([[":status", String(response.status)], ...toHeaderList(response.headers)]);
    try {
      this.send({ response_headers: { headers: headers.toWire(), end_of_stream: response.endOfStream === true } });
      const answer = await this.expect("response_headers");
      if (answer === undefined) return { type: "continue", headers };
      return {
        type: "continue",
        headers: applyHeaderMutation(headers, answer.response_headers?.response?.header_mutation),
      };
    } catch (error) {
      return this.failureOf(error);
    }
  }

  /**
   * Streams the upstream response body through the processor and yields what it sends back, chunk by
   * chunk, until its `end_of_stream`. Throws when the processor fails or answers out of protocol
   * (Envoy resets the downstream stream then).
   */
  async *processResponseBody(chunks: BodyInput): AsyncGenerator<Buffer> {
    const unsent: Buffer[] = [];
    const pump = this.pumpBody("response_body", chunks, undefined, (bytes, sent) => {
      if (!sent && bytes.length > 0) unsent.push(bytes);
    });
    // A body source that fails (client or upstream gone) resets the stream, as Envoy does.
    pump.catch(() => this.reset());
    for (;;) {
      const answer = await this.expect("response_body").catch((error: unknown) => {
        throw error instanceof PhaseFailure ? new Error(error.message) : error;
      });
      if (answer === undefined) {
        // The processor closed cleanly: Envoy forwards the rest untouched.
        await pump;
        yield* unsent;
        return;
      }
      const streamed = answer.response_body?.response?.body_mutation?.streamed_response;
      if (streamed === undefined)
        throw new Error("spurious response_body without streamed_response in full-duplex mode");
      if (streamed.body !== undefined && streamed.body.length > 0) yield Buffer.from(streamed.body);
      if (streamed.end_of_stream === true) break;
    }
    await pump;
  }

  /** Ends the stream as Envoy does after a request: half-close, then reset (unless `closeMode` is graceful). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.call.end();
    } finally {
      if (this.clientOptions.closeMode !== "graceful" && this.inbox.ended === undefined) this.call.cancel();
    }
  }

  /** Half-closes and resets the stream whatever `closeMode` says (a body source failed). */
  private reset(): void {
    const alreadyClosed = this.closed;
    this.closed = true;
    if (!alreadyClosed) this.call.end();
    if (this.inbox.ended === undefined) this.call.cancel();
  }

  private send(message: ProcessingRequest): void {
    if (this.closed) throw new Error("exchange already closed");
    const outgoing: ProcessingRequest = { ...message };
    if (Object.keys(this.filterMetadata).length > 0) {
      outgoing.metadata_context = {
        filter_metadata: Object.fromEntries(
          Object.entries(this.filterMetadata).map(([ns, obj]) => [ns, jsonToStruct(obj)]),
        ),
      };
    }
    if (this.first) {
      this.first = false;
      const config =
        this.clientOptions.protocolConfig === undefined ? ENVOY_PROTOCOL_CONFIG : this.clientOptions.protocolConfig;
      if (config !== null) outgoing.protocol_config = config;
    }
    this.call.write(outgoing);
  }

  /** The stream can still carry messages (neither side has ended it). */
  private get open(): boolean {
    return !this.closed && this.inbox.ended === undefined;
  }

  /**
   * Sends a body in chunks of at most `chunkBytes`, then the trailers or the end of stream: the last
   * chunk of a whole body carries `end_of_stream`, a chunked body ends with an empty chunk that does (as
   * Envoy does when the end arrives without data). The whole input is read even after the stream has
   * ended; `onChunk` sees every chunk and whether it went to the processor.
   */
  private async pumpBody(
    phase: "request_body" | "response_body",
    body: BodyInput,
    trailers: HeaderInput | undefined,
    onChunk?: (bytes: Buffer, sent: boolean) => void,
  ): Promise<void> {
    const chunkBytes = this.clientOptions.chunkBytes ?? 16 * 1024;
    const endWithTrailers = trailers !== undefined;
    const emit = (bytes: Buffer, endOfStream: boolean) => {
      const open = this.open;
      if (open) this.sendBody(phase, bytes, endOfStream);
      onChunk?.(bytes, open);
    };
    if (body instanceof Uint8Array) {
      const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
      if (bytes.length === 0 && !endWithTrailers) emit(bytes, true);
      for (let offset = 0; offset < bytes.length; offset += chunkBytes) {
        const end = Math.min(offset + chunkBytes, bytes.length);
        emit(bytes.subarray(offset, end), !endWithTrailers && end === bytes.length);
        await new Promise((resolve) => setImmediate(resolve));
      }
    } else {
      for await (const chunk of body) {
        const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        for (let offset = 0; offset < bytes.length; offset += chunkBytes) {
          emit(bytes.subarray(offset, Math.min(offset + chunkBytes, bytes.length)), false);
        }
      }
      if (!endWithTrailers) emit(Buffer.alloc(0), true);
    }
    if (endWithTrailers && this.open) {
      const wire = toHeaderList(trailers).toWire();
      this.send(
        phase === "request_body" ? { request_trailers: { trailers: wire } } : { response_trailers: { trailers: wire } },
      );
    }
  }

  private sendBody(phase: "request_body" | "response_body", body: Buffer, endOfStream: boolean): void {
    this.send(
      phase === "request_body"
        ? { request_body: { body, end_of_stream: endOfStream } }
        : { response_body: { body, end_of_stream: endOfStream } },
    );
  }

  /** Reads request-body answers until end of stream (or the trailers answer) and joins them. */
  private async collectStreamedBody(phase: "request_body", untilTrailers: boolean): Promise<Buffer> {
    const parts: Buffer[] = [];
    for (;;) {
      const answer = await this.expect(untilTrailers ? ["request_body", "request_trailers"] : "request_body");
      if (answer === undefined)
        throw new PhaseFailure({
          type: "error",
          message: "processor closed the stream in the middle of the request body",
        });
      if (answer.response === "request_trailers") break;
      const streamed = answer[phase]?.response?.body_mutation?.streamed_response;
      if (streamed === undefined) {
        throw new PhaseFailure({
          type: "error",
          message: "spurious request_body response without streamed_response in full-duplex mode",
        });
      }
      if (streamed.body !== undefined && streamed.body.length > 0) parts.push(Buffer.from(streamed.body));
      if (streamed.end_of_stream === true && !untilTrailers) break;
    }
    return Buffer.concat(parts);
  }

  /**
   * Next answer, which must be of the expected kind. Returns undefined when the processor ended the
   * stream cleanly (the data plane goes on without it); throws `PhaseFailure` for an immediate
   * response, an error status, or an answer out of order.
   */
  private async expect(kinds: string | string[]): Promise<ProcessingResponse | undefined> {
    const item = await this.inbox.next();
    if ("ended" in item) {
      if (item.ended.code === 0) return undefined;
      throw new PhaseFailure({
        type: "error",
        message: `ext_proc stream failed: ${item.ended.details}`,
        grpcCode: item.ended.code,
      });
    }
    const message = item.message;
    this.mergeDynamicMetadata(message);
    if (message.response === "immediate_response") {
      const immediate = message.immediate_response ?? {};
      const code = immediate.status?.code ?? 0;
      throw new PhaseFailure({
        type: "immediate",
        status: code < 200 ? 200 : code,
        headers: applyHeaderMutation(new HeaderList(), immediate.headers),
        body: Buffer.from(immediate.body ?? Buffer.alloc(0)),
        details: immediate.details ?? "",
      });
    }
    const expected = typeof kinds === "string" ? [kinds] : kinds;
    if (message.response === undefined || !expected.includes(message.response)) {
      throw new PhaseFailure({
        type: "error",
        message: `spurious ext_proc response ${message.response ?? "(none)"} while expecting ${expected.join(" or ")}`,
      });
    }
    return message;
  }

  private mergeDynamicMetadata(message: ProcessingResponse): void {
    if (message.dynamic_metadata === undefined) return;
    for (const [namespace, value] of Object.entries(structToJson(message.dynamic_metadata))) {
      if (typeof value !== "object" || value === null || Array.isArray(value)) continue;
      this.dynamicMetadata[namespace] = { ...this.dynamicMetadata[namespace], ...value };
    }
  }

  private failureOf(error: unknown): Exclude<PhaseResult<never>, { type: "continue" }> {
    if (error instanceof PhaseFailure) return error.result;
    if (error instanceof MutationError) return { type: "error", message: error.message };
    return { type: "error", message: (error as Error).message };
  }
}

function toHeaderList(headers: HeaderInput): HeaderList {
  return headers instanceof HeaderList ? headers : new HeaderList(headers);
}
