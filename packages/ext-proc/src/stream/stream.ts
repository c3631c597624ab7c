import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import type {
  ExtProcLogger,
  RequestBody,
  RequestEndReason,
  RequestLifecycle,
  RequestRouter,
  RouteAccepted,
  RouteDecision,
  RouteRejected,
  StreamOutcome,
  StreamSummary,
} from "../types.js";
import { HeaderList, setHeaderOption } from "../wire/headers.js";
import type {
  ProcessingRequest,
  ProcessingResponse,
  WireHttpBody,
  WireHttpHeaders,
  WireHeaderValueOption,
  WireMetadata,
} from "../wire/messages.js";
import {
  EndpointSubset,
  filterMetadataOf,
  parseHostPort,
  servedEndpointOf,
  subsetHintOf,
  type FilterMetadata,
} from "../wire/metadata.js";
import { parseJsonBody, rewriteBody, type RewriteResult } from "./body.js";
import { HIDDEN_FROM_ROUTER, requestHeadersResponse, streamedBodyResponses } from "./mutations.js";
import { protocolProblem } from "./protocol.js";
import { immediateResponseFor, reject, rejectionStatus } from "./rejection.js";
import { ResponseBodyObserver } from "./response-body.js";

/** gRPC status codes the state machine ends streams with. */
export const GrpcCode = { OK: 0, INVALID_ARGUMENT: 3, FAILED_PRECONDITION: 9, INTERNAL: 13 } as const;

/** Request header restricting the pick in conformance tests (comma-separated IPs or `ip:port`s). */
export const CONFORMANCE_SELECTION_HEADER = "test-epp-endpoint-selection";
/** Response header echoing the served endpoint in conformance tests. */
export const CONFORMANCE_SERVED_HEADER = "x-conformance-test-served-endpoint";

/** Where a stream's output goes (the gRPC call, or a test's array). */
export interface StreamSink {
  send(response: ProcessingResponse): void;
  /** Ends the stream: OK without `error`, else with that gRPC status. Called at most once. */
  finish(error?: { code: number; message: string }): void;
}

/** Bounds the number of decisions in progress across streams (try-acquire, no queue). */
export interface RouteGate {
  tryAcquire(): boolean;
  release(): void;
}

/** A counting `RouteGate`. */
export class InflightLimit implements RouteGate {
  private active = 0;
  constructor(readonly max: number) {}
  get inflight(): number {
    return this.active;
  }
  tryAcquire(): boolean {
    if (this.active >= this.max) return false;
    this.active++;
    return true;
  }
  release(): void {
    if (this.active > 0) this.active--;
  }
}

/** Bytes of request bodies buffered across streams, bounded (try-take, no queue). */
export class ByteBudget {
  private taken = 0;
  constructor(readonly max: number) {}
  get used(): number {
    return this.taken;
  }
  tryTake(bytes: number): boolean {
    if (this.taken + bytes > this.max) return false;
    this.taken += bytes;
    return true;
  }
  give(bytes: number): void {
    this.taken = Math.max(0, this.taken - bytes);
  }
}

export interface StreamOptions {
  router: RequestRouter;
  /** Largest request body accepted (413 beyond). */
  maxRequestBodyBytes: number;
  /** Honour `test-epp-endpoint-selection` and echo the served endpoint (test deployments only). */
  conformanceHooks?: boolean;
  gate?: RouteGate;
  /** Shared bound on buffered request bodies (503 when a body would not fit). */
  bodyBudget?: ByteBudget;
  logger?: ExtProcLogger;
  onStreamEnd?(summary: StreamSummary): void;
  /** Milliseconds clock (default `performance.now`). */
  now?(): number;
  /** Id source for stream and request ids (default UUID v4). */
  newId?(): string;
}

/** Default request body limit: 32 MiB. */
export const DEFAULT_MAX_REQUEST_BODY_BYTES = 32 * 1024 * 1024;

type Phase = "request_headers" | "request_body" | "routing" | "forwarded" | "done";
type RequestEnd = "headers" | "body" | "trailers";

const EMPTY = Buffer.alloc(0);

/**
 * One ext_proc stream as pure logic: `receive` each inbound message, `close` when the transport ends;
 * responses and the final status go to the sink. Holds the request headers until the body is complete,
 * asks the router once, answers with mutations (or an ImmediateResponse), then watches the response
 * and ends the request's lifecycle exactly once.
 */
export class ExtProcStream {
  readonly streamId: string;
  private readonly now: () => number;
  private readonly newId: () => string;
  private readonly startedAt: number;
  private abort: AbortController | undefined;
  private phase: Phase = "request_headers";
  private protocolChecked = false;
  private metadata: FilterMetadata = {};
  /**
   * The latest `metadata_context` not converted yet: converted when read (routing, response headers), so the
   * metadata a gateway repeats on every body chunk is not converted once per chunk.
   */
  private unreadMetadata: WireMetadata | undefined;
  private headers: HeaderList | undefined;
  private requestId: string | undefined;
  private bodyChunks: Buffer[] = [];
  private bodyBytes = 0;
  private budgetTaken = 0;
  private body: RequestBody | undefined;
  private routeSubset: EndpointSubset | undefined;
  private requestEnd: RequestEnd = "body";
  private backlog: ProcessingRequest[] = [];
  private routeStartedAt = 0;
  private routeMs: number | undefined;
  private decision: RouteAccepted | undefined;
  private lifecycle: RequestLifecycle | undefined;
  private lifecycleEnded = false;
  private decidedAt = 0;
  private responseStarted = false;
  private responseComplete = false;
  private responseStatus: number | undefined;
  private servedEndpoint: string | undefined;
  private servedMismatch = false;
  private observer: ResponseBodyObserver | undefined;
  private firstChunkAt: number | undefined;
  private rejection: StreamSummary["rejection"];
  private grpcError: StreamSummary["grpcError"];
  private finished = false;
  private closed = false;

  constructor(
    private readonly options: StreamOptions,
    private readonly sink: StreamSink,
  ) {
    this.now = options.now ?? (() => performance.now());
    this.newId = options.newId ?? randomUUID;
    this.streamId = this.newId();
    this.startedAt = this.now();
  }

  /** Handles one inbound message (queued while a decision is pending). */
  receive(message: ProcessingRequest): void {
    if (this.finished || this.closed) return;
    if (this.phase === "routing") {
      this.backlog.push(message);
      return;
    }
    this.guarded(() => this.process(message));
  }

  /**
   * The transport ended: `end` (half-close or normal end, CANCELLED included after a complete
   * response), `cancelled` or `error`. Idempotent. Frees the request if still held.
   */
  close(cause: "end" | "cancelled" | "error"): void {
    if (this.closed) return;
    this.closed = true;
    this.backlog = [];
    this.releaseBody();
    this.abortPendingRoute();
    const reason: RequestEndReason = this.responseComplete ? "complete" : cause === "error" ? "error" : "cancelled";
    this.endLifecycle(reason);
    this.emitSummary(cause);
  }

  private process(message: ProcessingRequest): void {
    if (message.metadata_context !== undefined) this.unreadMetadata = message.metadata_context;
    if (message.observability_mode === true || (!this.protocolChecked && message.protocol_config !== undefined)) {
      this.protocolChecked = true;
      const problem = protocolProblem(message);
      if (problem !== undefined) {
        this.options.logger?.warn({ streamId: this.streamId }, problem);
        this.fail(GrpcCode.FAILED_PRECONDITION, problem);
        return;
      }
    }
    switch (message.request ?? phaseOf(message)) {
      case "request_headers":
        return this.onRequestHeaders(message.request_headers ?? {});
      case "request_body":
        return this.onRequestBody(message.request_body ?? {});
      case "request_trailers":
        return this.onRequestTrailers();
      case "response_headers":
        return this.onResponseHeaders(message.response_headers ?? {});
      case "response_body":
        return this.onResponseBody(message.response_body ?? {});
      case "response_trailers":
        return this.onResponseTrailers();
      default:
        return this.violation("ProcessingRequest carries no request phase (request_headers, request_body, ...)");
    }
  }

  private onRequestHeaders(message: WireHttpHeaders): void {
    if (this.phase !== "request_headers") return this.violation("request_headers received twice");
    this.headers = HeaderList.fromWire(message.headers);
    const requestId = this.headers.get("x-request-id")?.trim();
    this.requestId = requestId !== undefined && requestId !== "" ? requestId : this.newId();
    if (message.end_of_stream === true) {
      this.requestEnd = "headers";
      this.startRoute();
    } else {
      this.phase = "request_body";
    }
  }

  private onRequestBody(message: WireHttpBody): void {
    if (this.phase !== "request_body") return this.violation(`request_body received in phase ${this.phase}`);
    const chunk = toBuffer(message.body);
    this.bodyBytes += chunk.length;
    if (this.bodyBytes > this.options.maxRequestBodyBytes) {
      this.releaseBody();
      return this.respondRejection(
        reject(
          "body_too_large",
          `request body exceeds the endpoint picker's limit of ${this.options.maxRequestBodyBytes} bytes; send a smaller request`,
        ),
      );
    }
    if (chunk.length > 0) {
      const budget = this.options.bodyBudget;
      if (budget !== undefined) {
        if (!budget.tryTake(chunk.length)) {
          return this.respondRejection(
            reject(
              "overloaded",
              "endpoint picker overloaded: too many request bodies are buffered at once; retry shortly",
            ),
          );
        }
        this.budgetTaken += chunk.length;
      }
      this.bodyChunks.push(chunk);
    }
    if (message.end_of_stream === true) {
      this.requestEnd = "body";
      this.startRoute();
    }
  }

  private onRequestTrailers(): void {
    if (this.phase !== "request_body") return this.violation(`request_trailers received in phase ${this.phase}`);
    this.requestEnd = "trailers";
    this.startRoute();
  }

  private startRoute(): void {
    const headers = this.headers ?? new HeaderList();
    const subset = this.subsetOf(headers);
    this.routeSubset = subset;
    if (subset?.isEmpty === true) {
      return this.respondRejection(
        reject("no_endpoints", "no endpoints available: the gateway's endpoint subset is empty"),
      );
    }
    let body: RequestBody | undefined;
    if (this.requestEnd !== "headers" && this.bodyBytes > 0) {
      const bytes = this.bodyChunks.length === 1 ? this.bodyChunks[0]! : Buffer.concat(this.bodyChunks, this.bodyBytes);
      this.bodyChunks = [];
      const parsed = parseJsonBody(bytes);
      if (!parsed.ok) return this.respondRejection(reject("invalid_request", parsed.message));
      body = { bytes, json: parsed.json, text: parsed.text };
    }
    this.body = body;
    const gate = this.options.gate;
    if (gate !== undefined && !gate.tryAcquire()) {
      return this.respondRejection(
        reject("overloaded", "endpoint picker overloaded: too many requests are being routed at once; retry shortly"),
      );
    }
    const request = {
      streamId: this.streamId,
      requestId: this.requestId!,
      method: headers.get(":method") ?? "",
      path: headers.get(":path") ?? "",
      authority: headers.get(":authority") ?? headers.get("host") ?? "",
      headers: headers.without(HIDDEN_FROM_ROUTER),
      ...(body !== undefined ? { body } : {}),
      ...(subset !== undefined ? { subset } : {}),
      filterMetadata: this.latestMetadata(),
    };
    this.phase = "routing";
    this.routeStartedAt = this.now();
    let released = false;
    const release = () => {
      if (!released) {
        released = true;
        gate?.release();
      }
    };
    let result: RouteDecision | Promise<RouteDecision>;
    this.abort = new AbortController();
    try {
      result = this.options.router.route(request, this.abort.signal);
    } catch (error) {
      release();
      return this.onRouteError(error);
    }
    if (isPromiseLike(result)) {
      result.then(
        (decision) => {
          release();
          this.guarded(() => this.onDecision(decision));
        },
        (error: unknown) => {
          release();
          this.guarded(() => this.onRouteError(error));
        },
      );
    } else {
      release();
      this.onDecision(result);
    }
  }

  /** Drops the buffered request body and returns its bytes to the shared budget. */
  private releaseBody(): void {
    this.bodyChunks = [];
    this.body = undefined;
    if (this.budgetTaken > 0) {
      this.options.bodyBudget?.give(this.budgetTaken);
      this.budgetTaken = 0;
    }
  }

  /** Tells the router a pending decision is no longer wanted (only then: aborting costs an exception object). */
  private abortPendingRoute(): void {
    if (this.phase === "routing") this.abort?.abort();
  }

  /** Runs `step`; a bug inside ends this stream with INTERNAL instead of escaping to the process. */
  private guarded(step: () => void): void {
    try {
      step();
    } catch (error) {
      this.options.logger?.error(
        { streamId: this.streamId, requestId: this.requestId, err: error },
        "ext_proc stream failed",
      );
      this.fail(GrpcCode.INTERNAL, "endpoint picker internal error");
    }
  }

  private onRouteError(error: unknown): void {
    this.options.logger?.error({ streamId: this.streamId, requestId: this.requestId, err: error }, "router failed");
    if (this.closed) return;
    this.respondRejection(reject("internal", "endpoint picker failed to route the request"));
  }

  private onDecision(decision: RouteDecision): void {
    this.routeMs = this.now() - this.routeStartedAt;
    if (decision.type === "route") {
      this.lifecycle = decision.lifecycle;
      this.decidedAt = this.now();
    }
    if (this.closed || this.finished) {
      this.endLifecycle("abandoned");
      return;
    }
    if (decision.type !== "route") return this.respondRejection(decision);
    const subset = this.routeSubset;
    const usable = decision.endpoints.filter(
      (endpoint) => parseHostPort(endpoint)?.port !== undefined && (subset === undefined || subset.allows(endpoint)),
    );
    if (usable.length === 0) {
      this.options.logger?.warn(
        { streamId: this.streamId, endpoints: decision.endpoints },
        "router chose no usable endpoint inside the subset",
      );
      return this.respondRejection(
        reject("no_endpoints", "no endpoints available inside the gateway's endpoint subset"),
      );
    }
    this.decision = usable.length === decision.endpoints.length ? decision : { ...decision, endpoints: usable };
    this.sink.send(requestHeadersResponse(this.decision));
    if (this.requestEnd !== "headers") {
      const rewritten: RewriteResult =
        this.body !== undefined ? rewriteBody(this.body, decision.body) : { bytes: EMPTY };
      if (rewritten.warning !== undefined) {
        this.options.logger?.warn({ streamId: this.streamId, requestId: this.requestId }, rewritten.warning);
      }
      for (const response of streamedBodyResponses("request_body", rewritten.bytes, this.requestEnd === "body")) {
        this.sink.send(response);
      }
      if (this.requestEnd === "trailers") this.sink.send({ request_trailers: {} });
    }
    this.releaseBody();
    this.phase = "forwarded";
    while (this.backlog.length > 0 && !this.finished && !this.closed) this.process(this.backlog.shift()!);
  }

  /** The latest `metadata_context`'s filter metadata. */
  private latestMetadata(): FilterMetadata {
    if (this.unreadMetadata !== undefined) {
      this.metadata = filterMetadataOf(this.unreadMetadata);
      this.unreadMetadata = undefined;
    }
    return this.metadata;
  }

  /** The subset hint, narrowed by the conformance selection header when the hooks are on. */
  private subsetOf(headers: HeaderList): EndpointSubset | undefined {
    const subset = subsetHintOf(this.latestMetadata());
    const selection = this.options.conformanceHooks === true ? headers.get(CONFORMANCE_SELECTION_HEADER) : undefined;
    if (selection === undefined || selection.trim() === "") return subset;
    const selected = EndpointSubset.of(selection.split(","));
    return subset ? subset.and(selected) : selected;
  }

  private onResponseHeaders(message: WireHttpHeaders): void {
    if (this.responseStarted) return this.violation("response_headers received twice");
    if (this.phase !== "forwarded" && this.phase !== "request_headers") {
      return this.violation(`response_headers received before the request was answered (phase ${this.phase})`);
    }
    if (this.phase === "request_headers") this.phase = "forwarded";
    const headers = HeaderList.fromWire(message.headers);
    const status = Number.parseInt(headers.get(":status") ?? "", 10);
    this.responseStatus = Number.isFinite(status) ? status : 0;
    const streaming = (headers.get("content-type") ?? "").toLowerCase().includes("text/event-stream");
    this.servedEndpoint = servedEndpointOf(this.latestMetadata());
    const picked = this.decision?.endpoints[0];
    const servedMismatch =
      this.servedEndpoint !== undefined && picked !== undefined && !sameEndpoint(this.servedEndpoint, picked);
    this.servedMismatch = servedMismatch;
    if (servedMismatch) {
      this.options.logger?.warn(
        { streamId: this.streamId, requestId: this.requestId, picked, served: this.servedEndpoint },
        "served endpoint differs from the picked one",
      );
    }
    this.responseStarted = true;
    this.observer = new ResponseBodyObserver(streaming, this.lifecycle?.outputProgress !== undefined);
    const start = {
      status: this.responseStatus,
      streaming,
      servedMismatch,
      ...(this.servedEndpoint !== undefined ? { servedEndpoint: this.servedEndpoint } : {}),
    };
    this.callLifecycle("responseStarted", (l) => l.responseStarted?.(start));
    const setHeaders: WireHeaderValueOption[] = [];
    if (this.options.conformanceHooks === true && this.servedEndpoint !== undefined) {
      setHeaders.push(setHeaderOption(CONFORMANCE_SERVED_HEADER, this.servedEndpoint));
    }
    this.sink.send({
      response_headers: { response: setHeaders.length > 0 ? { header_mutation: { set_headers: setHeaders } } : {} },
    });
    if (message.end_of_stream === true) this.completeResponse();
  }

  private onResponseBody(message: WireHttpBody): void {
    if (!this.responseStarted) return this.violation("response_body received before response_headers");
    if (this.responseComplete) return this.violation("response_body received after the response ended");
    const chunk = toBuffer(message.body);
    const endOfStream = message.end_of_stream === true;
    const progressed = this.observer!.push(chunk);
    for (const response of streamedBodyResponses("response_body", chunk, endOfStream)) this.sink.send(response);
    if (chunk.length > 0 && this.firstChunkAt === undefined) {
      this.firstChunkAt = this.now();
      this.callLifecycle("prefillComplete", (l) => l.prefillComplete?.());
    }
    if (chunk.length > 0 && this.lifecycle?.responseChunk)
      this.callLifecycle("responseChunk", (l) => l.responseChunk?.());
    if (progressed) {
      const generated = this.observer!.generatedTokens;
      this.callLifecycle("outputProgress", (l) => l.outputProgress?.(generated));
    }
    if (endOfStream) this.completeResponse();
  }

  private onResponseTrailers(): void {
    if (!this.responseStarted) return this.violation("response_trailers received before response_headers");
    this.sink.send({ response_trailers: {} });
    if (!this.responseComplete) this.completeResponse();
  }

  private completeResponse(): void {
    this.responseComplete = true;
    this.observer?.finish();
    this.endLifecycle("complete");
  }

  private respondRejection(rejection: RouteRejected): void {
    if (this.finished || this.closed) return;
    this.rejection = { status: rejectionStatus(rejection), reason: rejection.reason, message: rejection.message };
    this.sink.send(immediateResponseFor(rejection));
    this.finished = true;
    this.phase = "done";
    this.releaseBody();
    this.backlog = [];
    this.endLifecycle("error");
    this.sink.finish();
  }

  private violation(message: string): void {
    this.options.logger?.warn({ streamId: this.streamId, requestId: this.requestId }, message);
    this.fail(GrpcCode.INVALID_ARGUMENT, message);
  }

  private fail(code: number, message: string): void {
    if (this.finished || this.closed) return;
    this.abortPendingRoute();
    this.finished = true;
    this.phase = "done";
    this.grpcError = { code, message };
    this.releaseBody();
    this.backlog = [];
    this.endLifecycle("error");
    this.sink.finish({ code, message });
  }

  private endLifecycle(reason: RequestEndReason): void {
    const lifecycle = this.lifecycle;
    if (lifecycle === undefined || this.lifecycleEnded) return;
    this.lifecycleEnded = true;
    const now = this.now();
    const usage = this.observer?.usage;
    const outcome = {
      reason,
      generatedTokens: this.observer?.generatedTokens ?? 0,
      durationMs: now - this.decidedAt,
      ...(this.responseStatus !== undefined ? { status: this.responseStatus } : {}),
      ...(usage !== undefined ? { usage } : {}),
      ...(this.servedEndpoint !== undefined ? { servedEndpoint: this.servedEndpoint } : {}),
      ...(this.firstChunkAt !== undefined ? { firstChunkMs: this.firstChunkAt - this.decidedAt } : {}),
    };
    this.callLifecycle("end", (l) => l.end(outcome));
  }

  private callLifecycle(name: string, call: (lifecycle: RequestLifecycle) => unknown): void {
    const lifecycle = this.lifecycle;
    if (lifecycle === undefined) return;
    const report = (error: unknown) =>
      this.options.logger?.warn({ streamId: this.streamId, requestId: this.requestId, err: error }, `${name} failed`);
    try {
      const result = call(lifecycle);
      if (isPromiseLike(result)) result.then(undefined, report);
    } catch (error) {
      report(error);
    }
  }

  private emitSummary(cause: "end" | "cancelled" | "error"): void {
    const onStreamEnd = this.options.onStreamEnd;
    if (onStreamEnd === undefined) return;
    let outcome: StreamOutcome;
    if (this.rejection !== undefined) outcome = "early_reject";
    else if (this.grpcError !== undefined || cause === "error") outcome = "ext_proc_error";
    else if (this.responseComplete)
      outcome = (this.responseStatus ?? 0) >= 400 ? "upstream_http_error" : "response_eos";
    else outcome = "incomplete";
    const usage = this.observer?.usage;
    const summary: StreamSummary = {
      streamId: this.streamId,
      outcome,
      headerOnly: this.requestEnd === "headers",
      durationMs: this.now() - this.startedAt,
      ...(this.requestId !== undefined ? { requestId: this.requestId } : {}),
      ...(this.decision !== undefined ? { endpoints: this.decision.endpoints } : {}),
      ...(this.rejection !== undefined ? { rejection: this.rejection } : {}),
      ...(this.responseStatus !== undefined ? { responseStatus: this.responseStatus } : {}),
      ...(this.servedEndpoint !== undefined
        ? { servedEndpoint: this.servedEndpoint, servedMismatch: this.servedMismatch }
        : {}),
      ...(this.firstChunkAt !== undefined && this.decision !== undefined
        ? { firstChunkMs: this.firstChunkAt - this.decidedAt }
        : {}),
      ...(usage !== undefined ? { usage } : {}),
      ...(this.routeMs !== undefined ? { routeMs: this.routeMs } : {}),
      ...(this.grpcError !== undefined ? { grpcError: this.grpcError } : {}),
    };
    try {
      onStreamEnd(summary);
    } catch (error) {
      this.options.logger?.warn({ streamId: this.streamId, err: error }, "onStreamEnd failed");
    }
  }
}

const PHASES = [
  "request_headers",
  "request_body",
  "request_trailers",
  "response_headers",
  "response_body",
  "response_trailers",
] as const;

/** The set member of the `request` oneof, for messages built by hand (decoded ones name it). */
function phaseOf(message: ProcessingRequest): (typeof PHASES)[number] | undefined {
  return PHASES.find((phase) => message[phase] !== undefined && message[phase] !== null);
}

function toBuffer(bytes: Uint8Array | undefined): Buffer {
  if (bytes === undefined || bytes.length === 0) return EMPTY;
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function isPromiseLike<T>(value: unknown): value is PromiseLike<T> {
  return typeof (value as PromiseLike<T> | null)?.then === "function";
}

function sameEndpoint(a: string, b: string): boolean {
  const left = parseHostPort(a);
  const right = parseHostPort(b);
  if (left === undefined || right === undefined) return a.trim() === b.trim();
  return left.host === right.host && left.port === right.port;
}
