import { SpanStatusCode, context, trace, type Context, type Span, type Tracer } from "@opentelemetry/api";

/** The tracer of the endpoint picker's spans (a no-op until a tracer provider is registered). */
export function eppTracer(): Tracer {
  return trace.getTracer("dynamo-epp");
}

/** A context whose active span is `parent` (to start its children in). */
export function childOf(parent: Span): Context {
  return trace.setSpan(context.active(), parent);
}

/** Ends a span, marking it failed when `error` is given. */
export function endSpan(span: Span, error?: string): void {
  if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
  span.end();
}

/**
 * Registers an OpenTelemetry tracer provider exporting over OTLP/HTTP when the standard variables ask
 * for one (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, and
 * `OTEL_TRACES_EXPORTER` not `none`); the exporter reads its own settings from them. Returns the
 * provider's shutdown (which flushes), or undefined when tracing stays off (spans are no-ops).
 */
export async function startTracing(env: NodeJS.ProcessEnv): Promise<(() => Promise<void>) | undefined> {
  const endpoint = env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]?.trim() || env["OTEL_EXPORTER_OTLP_ENDPOINT"]?.trim();
  if (!endpoint || env["OTEL_TRACES_EXPORTER"]?.trim() === "none" || env["OTEL_SDK_DISABLED"]?.trim() === "true")
    return undefined;
  const { BatchSpanProcessor, NodeTracerProvider } = await import("@opentelemetry/sdk-trace-node");
  const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-http");
  const provider = new NodeTracerProvider({ spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())] });
  provider.register();
  return async () => {
    await provider.shutdown();
    trace.disable();
  };
}
