import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { closeServer, listen, portOf, readBody, send, sendJson } from "@dynamo/http-server";
import { pino, type Logger } from "pino";
import { chatAsChunks, completionAsChunks, completionToChat } from "./chat-shape.js";
import type { FrontendConfig } from "./config.js";
import { EngineClient } from "./engine-client.js";
import { decodeBody, engineRequest, type EngineRequest, type JsonObject } from "./engine-request.js";
import { engineUnavailable, errorBody, invalidEppMetadata, invalidRequest, requestTooLarge } from "./errors.js";
import { PREFILLER_HOST_PORT_HEADER, ROUTING_MODE_HEADER, engineHeaders, routingFields } from "./headers.js";
import { FrontendMetrics } from "./metrics.js";
import { runPrefill } from "./prefill.js";
import { relay, writeEvents, type Rewrite } from "./relay.js";
import { isRequestError, resolveRoute } from "./route.js";
import { PromptTokens, tokenDataOf } from "./prompt-tokens.js";
import type { RequestError, RequestKind, Route } from "./types.js";

const PATHS: Record<string, RequestKind> = { "/v1/chat/completions": "chat", "/v1/completions": "completions" };
const GET_PATHS = new Set(["/health", "/live", "/ready", "/metrics", "/v1/models"]);

/** One client request in flight. */
interface Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly started: number;
  readonly abort: AbortController;
  firstByteSeen: boolean;
}

/**
 * The sidecar's HTTP server: the OpenAI surface in front of one engine. It reads the endpoint picker's
 * metadata, resolves the route, builds the engine request, runs prefill when disaggregated and relays
 * the decode response; `/health`, `/metrics` and `/v1/models` beside. Every refusal is an OpenAI error.
 */
export class Frontend {
  readonly metrics = new FrontendMetrics();
  private readonly client = new EngineClient();
  private readonly tokens: PromptTokens;
  private readonly exchanges = new Set<Exchange>();
  private draining = false;

  private constructor(
    readonly config: FrontendConfig,
    readonly log: Logger,
    private readonly server: Server,
  ) {
    this.tokens = new PromptTokens(config.tokenizer, log);
  }

  /** Starts listening; `logger` defaults to pino on stdout at the configured level. */
  static async start(config: FrontendConfig, logger?: Logger): Promise<Frontend> {
    const log = logger ?? pino({ level: config.logLevel, base: { component: "frontend" } });
    const server = createServer({ noDelay: true, keepAliveTimeout: 65_000 });
    const frontend = new Frontend(config, log, server);
    server.on("request", (req: IncomingMessage, res: ServerResponse) => frontend.handle(req, res));
    await listen(server, config.port, config.host);
    log.info(
      {
        url: frontend.url,
        engine: config.engineUrl.href,
        workerId: config.workerId.toString(),
        workerIdFrom: config.workerIdSource,
        dataParallelSize: config.dataParallelSize,
        enforceDisagg: config.enforceDisagg,
      },
      "frontend listening",
    );
    return frontend;
  }

  /** `http://host:port` the server listens on (loopback when bound to every interface). */
  get url(): string {
    const host = this.config.host === "0.0.0.0" || this.config.host === "::" ? "127.0.0.1" : this.config.host;
    return `http://${host.includes(":") ? `[${host}]` : host}:${portOf(this.server)}`;
  }

  /** Requests being served. */
  get inflight(): number {
    return this.exchanges.size;
  }

  /**
   * Stops: `/health` answers 503 at once, no new connections, requests in flight get `drainMs` to
   * finish (then they are cut), the engine connections and the tokenizer close.
   */
  async close(drainMs = 0): Promise<void> {
    this.draining = true;
    const closed = closeServer(this.server);
    const deadline = Date.now() + drainMs;
    while (this.exchanges.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const exchange of this.exchanges) exchange.abort.abort();
    this.server.closeAllConnections();
    await closed;
    this.client.close();
    await this.tokens.close();
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? "/").split("?", 1)[0]!;
    const kind = PATHS[path];
    if (kind !== undefined) {
      if (req.method !== "POST") return this.refuse(res, methodNotAllowed(path, "POST"));
      void this.inference(req, res, kind, path);
      return;
    }
    if (!GET_PATHS.has(path))
      return this.refuse(res, {
        status: 404,
        type: "invalid_request_error",
        code: "not_found",
        message: `${path} is not served here: use /v1/chat/completions, /v1/completions, /v1/models, /health or /metrics`,
      });
    if (req.method !== "GET" && req.method !== "HEAD") return this.refuse(res, methodNotAllowed(path, "GET"));
    if (path === "/health" || path === "/live" || path === "/ready") {
      return sendJson(res, this.draining ? 503 : 200, {
        status: this.draining ? "draining" : "healthy",
        worker_id: String(this.config.workerId),
      });
    }
    if (path === "/metrics") {
      void this.metrics.registry.metrics().then((text) => {
        res.writeHead(200, { "content-type": this.metrics.registry.contentType });
        res.end(text);
      });
      return;
    }
    void this.models(res);
  }

  private refuse(res: ServerResponse, error: RequestError): void {
    send(res, error.status, errorBody(error), { "content-type": "application/json" });
  }

  /** The engine's URL for a DP rank (rank r listens on the engine port + r). */
  private engineUrl(dpRank: number, path: string): URL {
    const url = new URL(path, this.config.engineUrl);
    if (dpRank > 0) url.port = String(Number(this.config.engineUrl.port || 80) + dpRank);
    return url;
  }

  private async models(res: ServerResponse): Promise<void> {
    const abort = new AbortController();
    res.on("close", () => abort.abort());
    try {
      const upstream = await this.client.send(this.engineUrl(0, "/v1/models"), "GET", {}, undefined, abort.signal);
      await relay(res, upstream, { chatAsCompletion: false, cachedTokens: undefined }, noop, 2 ** 20);
    } catch (error) {
      this.refuse(
        res,
        engineUnavailable(`the engine at ${this.config.engineUrl.origin} did not answer: ${(error as Error).message}`),
      );
    }
  }

  private async inference(req: IncomingMessage, res: ServerResponse, kind: RequestKind, path: string): Promise<void> {
    const exchange: Exchange = {
      req,
      res,
      started: performance.now(),
      abort: new AbortController(),
      firstByteSeen: false,
    };
    this.exchanges.add(exchange);
    this.metrics.started();
    let stream = false;
    res.on("close", () => {
      if (!res.writableFinished) exchange.abort.abort();
      this.exchanges.delete(exchange);
      const ok = res.writableFinished && res.statusCode < 400;
      this.metrics.finished(path, stream, ok, (performance.now() - exchange.started) / 1000);
    });
    try {
      const read = await readBody(req, this.config.maxBodyBytes);
      if (!read.ok) {
        // The rest of the body is not read: the connection ends with the answer.
        res.setHeader("connection", "close");
        return this.refuse(res, requestTooLarge(read.limitBytes));
      }
      const raw = read.body.toString("utf8");
      let body: unknown;
      try {
        body = JSON.parse(raw);
      } catch (error) {
        return this.refuse(res, invalidRequest(`the request body is not valid JSON: ${(error as Error).message}`));
      }
      if (body === null || typeof body !== "object" || Array.isArray(body))
        return this.refuse(res, invalidRequest("the request body must be a JSON object"));
      const request = body as JsonObject;
      stream = request["stream"] === true;
      const nvext = request["nvext"];
      if (nvext !== undefined && nvext !== null && (typeof nvext !== "object" || Array.isArray(nvext)))
        return this.refuse(res, invalidRequest("nvext must be a JSON object"));
      const nvextObject = (nvext ?? undefined) as JsonObject | undefined;
      const tokenData = tokenDataOf(nvextObject);
      if (typeof tokenData === "string") return this.refuse(res, invalidEppMetadata(tokenData));

      const fields = routingFields(req.headers, nvextObject, raw);
      const route = resolveRoute(
        fields,
        {
          routingMode: header(req, ROUTING_MODE_HEADER),
          prefillerHostPort: header(req, PREFILLER_HOST_PORT_HEADER),
        },
        { workerId: this.config.workerId, dataParallelSize: this.config.dataParallelSize },
      );
      if (isRequestError(route)) {
        this.log.warn({ status: route.status, reason: route.message }, "request refused");
        return this.refuse(res, route);
      }
      const prompt = await this.tokens.forRequest(kind, request, raw, tokenData, fields.decodeWorkerId !== undefined);
      if (typeof prompt.ids === "string") return this.refuse(res, invalidRequest(prompt.ids));
      this.metrics.tokenSource(prompt.source);
      const engine = engineRequest(kind, request, prompt.ids, fields.cacheSalt);
      await this.serve(exchange, route, engine, stream, request);
    } catch (error) {
      if (exchange.abort.signal.aborted) return;
      this.log.error({ err: error }, "request failed");
      this.refuse(res, engineUnavailable(`the engine failed: ${(error as Error).message}`));
    }
  }

  private async serve(exchange: Exchange, route: Route, engine: EngineRequest, stream: boolean, client: JsonObject) {
    const headers = engineHeaders(exchange.req.headers);
    if (route.prefill === undefined) return this.decode(exchange, route.decode.dpRank, engine, engine.body, undefined);
    const maxTokens = engine.body["max_tokens"] ?? engine.body["max_completion_tokens"];
    const outcome = await runPrefill(this.client, route.prefill, engine, headers, maxTokens, exchange.abort.signal);
    const prefillName = `prefill worker ${route.prefill.workerId ?? "(unnamed)"} at ${route.prefill.hostPort}`;
    switch (outcome.kind) {
      case "transfer":
        this.metrics.disaggregated("decoded");
        return this.decode(
          exchange,
          route.decode.dpRank,
          engine,
          decodeBody(engine.body, outcome.kvTransferParams),
          outcome.cachedTokens,
        );
      case "finished": {
        this.metrics.disaggregated("finished_in_prefill");
        const response = { ...outcome.response };
        delete response["kv_transfer_params"];
        const shaped = engine.chatAsCompletion ? completionToChat(response) : response;
        const firstByte = () => this.firstByte(exchange);
        if (!stream) {
          firstByte();
          return sendJson(exchange.res, 200, shaped);
        }
        const includeUsage =
          (client["stream_options"] as { include_usage?: unknown } | undefined)?.include_usage === true;
        const events =
          engine.path === "/v1/chat/completions" || engine.chatAsCompletion
            ? chatAsChunks(shaped, includeUsage)
            : completionAsChunks(shaped, includeUsage);
        return writeEvents(exchange.res, events, firstByte);
      }
      case "rejected":
        this.metrics.disaggregated("prefill_rejected");
        exchange.res.writeHead(outcome.status, { "content-type": outcome.contentType || "application/json" });
        this.firstByte(exchange);
        exchange.res.end(outcome.body);
        return;
      case "failed":
        if (this.config.enforceDisagg) {
          this.metrics.disaggregated("refused");
          this.log.warn({ prefill: route.prefill.hostPort, reason: outcome.reason }, "prefill failed; refused");
          return this.refuse(
            exchange.res,
            engineUnavailable(
              `prefill on ${prefillName} failed (${outcome.reason}); DYN_ENFORCE_DISAGG=true forbids the aggregated fallback`,
              "prefill_failed",
            ),
          );
        }
        this.metrics.disaggregated("fallback_aggregated");
        this.log.warn(
          { prefill: route.prefill.hostPort, reason: outcome.reason },
          "prefill failed; decoding aggregated",
        );
        return this.decode(exchange, route.decode.dpRank, engine, engine.body, undefined);
    }
  }

  private async decode(
    exchange: Exchange,
    dpRank: number,
    engine: EngineRequest,
    body: JsonObject,
    cachedTokens: number | undefined,
  ): Promise<void> {
    const url = this.engineUrl(dpRank, engine.path);
    const headers = { ...engineHeaders(exchange.req.headers), "content-type": "application/json" };
    let upstream: IncomingMessage;
    try {
      upstream = await this.client.send(url, "POST", headers, JSON.stringify(body), exchange.abort.signal);
    } catch (error) {
      if (exchange.abort.signal.aborted) return;
      return this.refuse(
        exchange.res,
        engineUnavailable(`the engine at ${url.origin} is not reachable: ${(error as Error).message}`),
      );
    }
    const rewrite: Rewrite = { chatAsCompletion: engine.chatAsCompletion, cachedTokens };
    await relay(exchange.res, upstream, rewrite, () => this.firstByte(exchange), this.config.maxBodyBytes);
  }

  private firstByte(exchange: Exchange): void {
    if (exchange.firstByteSeen) return;
    exchange.firstByteSeen = true;
    this.metrics.firstByte((performance.now() - exchange.started) / 1000);
  }
}

function noop(): void {
  // nothing to record
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(", ") : value;
}

function methodNotAllowed(path: string, method: string): RequestError {
  return { status: 405, type: "invalid_request_error", code: "method_not_allowed", message: `${path} takes ${method}` };
}
