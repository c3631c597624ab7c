import { formatWorkerId } from "@dynamo/discovery";
import type { RequestLifecycle, RequestOutcome, ResponseStart, RouteRequest } from "@dynamo/ext-proc";
import type { RouterService, ServiceDecision } from "@dynamo/router-service";
import type { Span } from "@opentelemetry/api";
import type { Logger } from "pino";
import type { EppMetrics } from "./metrics.js";
import type { RequestControls } from "./request-controls.js";
import { childOf, endSpan, eppTracer } from "./tracing.js";

export interface BookedRequestContext {
  readonly service: RouterService;
  readonly metrics: EppMetrics;
  readonly log: Logger;
  /** The request's span (`epp.request`), ended with the response. */
  readonly span: Span;
  readonly request: RouteRequest;
  readonly controls: RequestControls;
  readonly decision: ServiceDecision;
  /** Milliseconds from the end of the request body to the decision (tokenization included). */
  readonly decisionMs: number;
  /** Report generated tokens to the router as they stream (`DYN_ROUTER_TRACK_OUTPUT_BLOCKS`). */
  readonly trackOutput: boolean;
}

const round = (ms: number) => Math.round(ms * 1000) / 1000;

/**
 * The response path of one booked request: the first response chunk marks prefill complete, generated
 * tokens grow the booking's output blocks, and the end (complete, cancelled, failed or abandoned) frees
 * the booking, records the worker's usage in the metrics and writes the request's decision-log line:
 * what was chosen and why, the cached tokens the router predicted next to those the worker reported,
 * and the time to the first response chunk.
 */
export class BookedRequest implements RequestLifecycle {
  /** Present only while output tracking is on (the state machine then counts tokens in the SSE stream). */
  readonly outputProgress?: (generatedTokens: number) => void;
  private readonly responseSpan: Span;
  private status: number | undefined;

  constructor(private readonly context: BookedRequestContext) {
    this.responseSpan = eppTracer().startSpan("epp.response", {}, childOf(context.span));
    if (context.trackOutput) {
      this.outputProgress = (generated) => {
        context.service.observeOutput(context.decision.bookingId, generated);
      };
    }
  }

  responseStarted(info: ResponseStart): void {
    this.status = info.status;
    this.responseSpan.setAttribute("http.response.status_code", info.status);
  }

  responseChunk(): void {
    this.context.service.renew(this.context.decision.bookingId);
  }

  prefillComplete(): void {
    const ok = this.context.service.markPrefillComplete(this.context.decision.bookingId);
    this.context.metrics.lifecycle("prefill_complete", ok);
    this.responseSpan.addEvent("first response chunk");
  }

  end(outcome: RequestOutcome): void {
    const { service, metrics, log, decision, request, controls, decisionMs } = this.context;
    const freed = service.free(decision.bookingId);
    metrics.lifecycle("request_complete", freed);
    const ttftMs = outcome.firstChunkMs === undefined ? undefined : decisionMs + outcome.firstChunkMs;
    metrics.completed(outcome.usage, ttftMs, decisionMs + outcome.durationMs, outcome.generatedTokens);
    const failed = outcome.reason === "error" || outcome.reason === "abandoned";
    endSpan(this.responseSpan, failed ? outcome.reason : undefined);
    endSpan(this.context.span, failed ? outcome.reason : undefined);
    log.info(
      {
        requestId: request.requestId,
        streamId: request.streamId,
        model: decision.model,
        mode: decision.mode,
        ...(decision.fallback && { fallback: true }),
        worker: formatWorkerId(decision.worker.workerId),
        dpRank: decision.worker.dpRank,
        endpoint: decision.endpoint,
        ...(decision.prefillWorker !== undefined && {
          prefillWorker: formatWorkerId(decision.prefillWorker.workerId),
          prefillDpRank: decision.prefillWorker.dpRank,
          prefillEndpoint: decision.prefillEndpoint,
        }),
        promptTokens: decision.isl,
        overlapBlocks: decision.overlapBlocks,
        predictedCachedTokens: decision.cachedTokens,
        actualCachedTokens: outcome.usage?.cachedTokens ?? null,
        reportedPromptTokens: outcome.usage?.promptTokens ?? null,
        completionTokens: outcome.usage?.completionTokens ?? (outcome.generatedTokens || null),
        tokenizeMs: round(decision.timings.tokenizeMs),
        selectMs: round(decision.timings.routeMs),
        decisionMs: round(decisionMs),
        ttftMs: ttftMs === undefined ? null : round(ttftMs),
        durationMs: round(decisionMs + outcome.durationMs),
        outcome: outcome.reason,
        status: outcome.status ?? this.status ?? null,
        ...(outcome.servedEndpoint !== undefined &&
          outcome.servedEndpoint !== decision.endpoint && { servedEndpoint: outcome.servedEndpoint }),
        ...(controls.priority !== undefined && { priority: controls.priority }),
        ...(controls.objective !== undefined && { objective: controls.objective }),
        ...(Object.keys(controls.metadata).length > 0 && { metadata: controls.metadata }),
        ...(freed ? {} : { bookingAlreadyFreed: true }),
      },
      "request",
    );
  }
}
