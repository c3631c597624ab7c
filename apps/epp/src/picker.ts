import { formatWorkerId } from "@dynamo/discovery";
import {
  reject,
  type RequestBody,
  type RequestRouter,
  type RouteDecision,
  type RouteRejected,
  type RouteRequest,
} from "@dynamo/ext-proc";
import {
  NoCandidatesError,
  NotReadyError,
  RouteError,
  type RouterService,
  type ServiceDecision,
  type TokenizedRequest,
} from "@dynamo/router-service";
import type { Logger } from "pino";
import { BookedRequest } from "./booked-request.js";
import type { EppSettings } from "./environment.js";
import type { EppMetrics } from "./metrics.js";
import { rejectionOf } from "./rejections.js";
import { RemoteTokenizer, RemoteTokenizerError } from "./remote-tokenizer.js";
import { readControls, type RequestControls } from "./request-controls.js";
import { workersInSubset } from "./subset.js";
import { childOf, endSpan, eppTracer } from "./tracing.js";

export interface PickerOptions {
  readonly service: RouterService;
  readonly settings: EppSettings;
  readonly metrics: EppMetrics;
  readonly log: Logger;
  /** Tokenize on a renderer service instead of the local tokenizer pool. */
  readonly remoteTokenizer?: RemoteTokenizer;
}

/**
 * The endpoint picker's routing decision for one request, plugged into the ext_proc state machine:
 * the request's controls (headers, path), tokenization (the model's own tokenizer and chat template on
 * the worker pool, or a renderer service), then selection and booking in one synchronous step by the
 * router service, answered with the routing headers of both generations, the token ids to inject and
 * the lifecycle that follows the response and frees the booking. Requests without a body go to any
 * ready worker, round robin, booking nothing.
 */
export class EppPicker implements RequestRouter {
  private nextHeaderOnly = 0;
  /** Request-body bytes waiting for or in tokenization (the router's admission queue). */
  private backlogBytes = 0;
  private readonly trackOutput: boolean;

  constructor(private readonly options: PickerOptions) {
    this.trackOutput = options.service.router?.settings.trackOutputBlocks ?? false;
  }

  /** Bytes of prompts waiting for tokenization. */
  get tokenizationBacklogBytes(): number {
    return this.backlogBytes;
  }

  route(request: RouteRequest, signal: AbortSignal): RouteDecision | Promise<RouteDecision> {
    if (request.body === undefined) return this.routeWithoutBody(request);
    return this.routeBody(request, request.body, signal);
  }

  /** Any ready worker inside the subset (round robin); no booking, no routing headers (§3.7). */
  private routeWithoutBody(request: RouteRequest): RouteDecision {
    const { service } = this.options;
    if (!service.ready) return this.refuse(rejectionOf(new NotReadyError("not ready")), false);
    const endpoints: string[] = [];
    for (const worker of service.listWorkers()) {
      if (worker.role === "prefill") continue;
      for (const endpoint of new Set([worker.httpEndpoint, ...worker.rankHttpEndpoints])) {
        if (endpoint !== "" && (request.subset === undefined || request.subset.allows(endpoint)))
          endpoints.push(endpoint);
      }
    }
    if (endpoints.length === 0) return this.refuse(reject("no_endpoints", "no endpoints available"), false);
    const endpoint = endpoints[this.nextHeaderOnly++ % endpoints.length]!;
    return { type: "route", endpoints: [endpoint] };
  }

  private async routeBody(request: RouteRequest, body: RequestBody, signal: AbortSignal): Promise<RouteDecision> {
    const { service, settings, metrics } = this.options;
    const started = performance.now();
    const controls = readControls(request.headers, request.path, settings.metadataHeader);
    if ("type" in controls) return this.refuse(controls, false);
    metrics.requestBytes(body.bytes.length);
    const bytes = body.bytes.length;
    if (this.backlogBytes > 0 && this.backlogBytes + bytes > settings.maxTokenizationBacklogBytes) {
      return this.refuse(
        reject(
          "router_overloaded",
          "endpoint picker overloaded: too many prompts are waiting for tokenization; retry shortly",
          { retryAfterSecs: settings.shedRetryAfterSecs },
        ),
        false,
      );
    }
    const span = eppTracer().startSpan("epp.request", {
      attributes: { "epp.request_id": request.requestId, "epp.stream_id": request.streamId, "http.path": request.path },
    });
    this.backlogBytes += bytes;
    let tokenized: TokenizedRequest;
    const tokenizeSpan = eppTracer().startSpan("epp.tokenize", {}, childOf(span));
    try {
      tokenized = await this.tokenize(request, body, controls, signal);
      metrics.phase("render_tokenize", true, tokenized.tokenizeMs);
      tokenizeSpan.setAttribute("epp.prompt_tokens", tokenized.tokens.length);
      endSpan(tokenizeSpan);
    } catch (error) {
      const rejection = this.rejectionOfError(error);
      metrics.phase("render_tokenize", false, performance.now() - started);
      endSpan(tokenizeSpan, rejection.message);
      endSpan(span, rejection.message);
      return this.refuse(rejection, false);
    } finally {
      this.backlogBytes -= bytes;
    }
    if (signal.aborted) {
      endSpan(span, "cancelled");
      return reject("internal", "request cancelled while it was being tokenized");
    }

    const selectSpan = eppTracer().startSpan("epp.select", {}, childOf(span));
    let decision: ServiceDecision;
    try {
      const allowedWorkers = request.subset === undefined ? undefined : workersInSubset(service, request.subset);
      if (allowedWorkers?.size === 0) throw new NoCandidatesError("no worker inside the subset");
      decision = await service.routeTokenizedQueued(
        {
          requestId: request.streamId,
          ...(controls.kind !== undefined && { kind: controls.kind }),
          ...(allowedWorkers !== undefined && { allowedWorkers }),
          ...(controls.cacheSalt !== undefined && { cacheSalt: controls.cacheSalt }),
          ...(controls.priority !== undefined && { priority: controls.priority }),
        },
        tokenized,
        signal,
      );
    } catch (error) {
      const rejection = this.rejectionOfError(error);
      metrics.phase("selection", false, 0);
      endSpan(selectSpan, rejection.message);
      endSpan(span, rejection.message);
      return this.refuse(rejection, true);
    }
    const selectMs = decision.timings.routeMs;
    metrics.phase("selection", true, selectMs);
    selectSpan.setAttributes({
      "epp.worker_id": formatWorkerId(decision.worker.workerId),
      "epp.dp_rank": decision.worker.dpRank,
      "epp.overlap_blocks": decision.overlapBlocks,
      "epp.routing_mode": decision.mode,
    });
    endSpan(selectSpan);
    if (decision.endpoint === undefined) {
      service.free(decision.bookingId);
      endSpan(span, "chosen worker has no endpoint");
      return this.refuse(reject("no_endpoints", "no endpoints available: the chosen worker has no address"), true);
    }
    metrics.routed(decision.isl, decision.cachedTokens, selectMs);
    const lifecycle = new BookedRequest({
      service,
      metrics,
      log: this.options.log,
      span,
      request,
      controls,
      decision,
      decisionMs: performance.now() - started,
      trackOutput: this.trackOutput,
    });
    return {
      type: "route",
      endpoints: [decision.endpoint],
      headers: routingHeaders(decision),
      ...(decision.prefillEndpoint !== undefined && { prefillEndpoint: decision.prefillEndpoint }),
      ...(decision.injectable && { body: { tokenData: decision.tokens } }),
      lifecycle,
    };
  }

  private async tokenize(
    request: RouteRequest,
    body: RequestBody,
    controls: RequestControls,
    signal: AbortSignal,
  ): Promise<TokenizedRequest> {
    const { service, remoteTokenizer } = this.options;
    const base = {
      // The text the state machine decoded, so the service does not decode the bytes a second time.
      body: body.text ?? body.bytes,
      parsedBody: body.json,
      ...(controls.kind !== undefined && { kind: controls.kind }),
    };
    if (remoteTokenizer === undefined) return service.tokenize(base);
    const started = performance.now();
    const kind = controls.kind ?? ("messages" in (body.json as object) ? "chat" : "completions");
    const tokens = await remoteTokenizer.tokenize(kind, body.bytes, signal);
    const tokenized = await service.tokenize({ ...base, tokens });
    return { ...tokenized, tokenizeMs: performance.now() - started };
  }

  private rejectionOfError(error: unknown): RouteRejected {
    if (error instanceof RouteError) return rejectionOf(error);
    if (error instanceof RemoteTokenizerError) return error.rejection;
    throw error;
  }

  private refuse(rejection: RouteRejected, scheduled: boolean): RouteRejected {
    this.options.metrics.rejected(rejection.reason, scheduled);
    return rejection;
  }
}

/** The routing headers, both generations (decision 2): canonical `x-dynamo-*` and the seed's names. */
export function routingHeaders(decision: ServiceDecision): Record<string, string> {
  const worker = formatWorkerId(decision.worker.workerId);
  const headers: Record<string, string> = {
    "x-dynamo-worker-instance-id": worker,
    "x-worker-instance-id": worker,
    "x-dynamo-dp-rank": String(decision.worker.dpRank),
    "x-dynamo-routing-mode": decision.mode,
  };
  if (decision.prefillWorker !== undefined) {
    const prefill = formatWorkerId(decision.prefillWorker.workerId);
    headers["x-dynamo-prefill-instance-id"] = prefill;
    headers["x-prefill-instance-id"] = prefill;
    headers["x-dynamo-prefill-dp-rank"] = String(decision.prefillWorker.dpRank);
  }
  return headers;
}
