import {
  ExtProcClient,
  ExtProcServer,
  RoundRobinRouter,
  type ExtProcClientOptions,
  type ExtProcServerOptions,
  type RequestLifecycle,
  type RequestOutcome,
  type RequestRouter,
  type RouteRequest,
  type StreamSummary,
} from "../src/index.js";

/** One lifecycle callback as a test records it. */
export type LifecycleEvent =
  | { streamId: string; kind: "responseStarted"; status: number; servedEndpoint?: string; servedMismatch: boolean }
  | { streamId: string; kind: "prefillComplete" }
  | { streamId: string; kind: "outputProgress"; generated: number }
  | { streamId: string; kind: "end"; outcome: RequestOutcome };

/** A pool router that records what it was asked and every lifecycle callback. */
export class RecordingRouter implements RequestRouter {
  readonly requests: RouteRequest[] = [];
  readonly events: LifecycleEvent[] = [];
  private readonly inner: RoundRobinRouter;

  constructor(
    endpoints: readonly string[],
    options: { tokenData?: (request: RouteRequest) => readonly number[] | Uint32Array | undefined } = {},
  ) {
    this.inner = new RoundRobinRouter({
      endpoints,
      ...(options.tokenData ? { tokenData: options.tokenData } : {}),
      headers: (endpoint) => ({
        "x-dynamo-worker-instance-id": String(endpoints.indexOf(endpoint) + 1),
        "x-worker-instance-id": String(endpoints.indexOf(endpoint) + 1),
        "x-dynamo-dp-rank": "0",
        "x-dynamo-routing-mode": "aggregated",
      }),
      lifecycle: (_endpoint, request) => this.lifecycleFor(request.streamId),
    });
  }

  route(request: RouteRequest, signal: AbortSignal) {
    this.requests.push(request);
    return this.inner.route(request, signal);
  }

  /** Lifecycle events of one stream. */
  eventsOf(streamId: string): LifecycleEvent[] {
    return this.events.filter((e) => e.streamId === streamId);
  }

  ends(): Array<Extract<LifecycleEvent, { kind: "end" }>> {
    return this.events.filter((e): e is Extract<LifecycleEvent, { kind: "end" }> => e.kind === "end");
  }

  lifecycleFor(streamId: string): RequestLifecycle {
    return {
      responseStarted: (info) => this.events.push({ streamId, kind: "responseStarted", ...info }),
      prefillComplete: () => this.events.push({ streamId, kind: "prefillComplete" }),
      outputProgress: (generated) => this.events.push({ streamId, kind: "outputProgress", generated }),
      end: (outcome) => this.events.push({ streamId, kind: "end", outcome }),
    };
  }
}

export interface Harness {
  server: ExtProcServer;
  client: ExtProcClient;
  summaries: StreamSummary[];
  close(): Promise<void>;
}

/** An ext_proc server on a free loopback port and a client speaking to it (TLS verified against its certificate). */
export async function startHarness(
  options: Partial<ExtProcServerOptions> & { router: RequestRouter; tls: boolean },
  clientOptions: Partial<ExtProcClientOptions> = {},
): Promise<Harness> {
  const summaries: StreamSummary[] = [];
  const server = await ExtProcServer.start({
    host: "127.0.0.1",
    port: 0,
    onStreamEnd: (summary) => summaries.push(summary),
    ...options,
  });
  const client = new ExtProcClient({
    target: `127.0.0.1:${server.port}`,
    tls: server.tls ? { ca: server.tls.cert } : false,
    ...clientOptions,
  });
  return {
    server,
    client,
    summaries,
    async close() {
      client.close();
      await server.close();
    },
  };
}

/** An OpenAI chat request body. */
export function chatBody(content: string, extra: Record<string, unknown> = {}): Buffer {
  return Buffer.from(
    JSON.stringify({ model: "Qwen/Qwen3-0.6B", messages: [{ role: "user", content }], ...extra }),
    "utf8",
  );
}

/** Request headers as Envoy sends them for a POST of `path`. */
export function postHeaders(
  path = "/v1/chat/completions",
  extra: Array<[string, string]> = [],
): Array<[string, string]> {
  return [
    [":method", "POST"],
    [":path", path],
    [":authority", "gateway.local"],
    [":scheme", "http"],
    ["content-type", "application/json"],
    ...extra,
  ];
}
