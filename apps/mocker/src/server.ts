import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { readBody, send, sendJson, type BodyRead } from "@dynamo/http-server";
import { HttpError, errorBody } from "./errors.js";
import type { Faults } from "./faults.js";
import { inferenceHeaders, serveGeneration, type RankContext } from "./generate.js";
import type { RequestKind } from "./request.js";

const GENERATION_PATHS: Readonly<Record<string, RequestKind>> = {
  "/v1/chat/completions": "chat",
  "/v1/completions": "completions",
};

const JSON_TYPE = { "content-type": "application/json" } as const;

/** A request body over the limit, as vLLM refuses it (413); the rest of it is not read. */
function tooLarge(res: ServerResponse, read: Extract<BodyRead, { ok: false }>): HttpError {
  res.setHeader("connection", "close");
  return new HttpError(
    413,
    read.declaredBytes === undefined
      ? `the request body is over the limit of ${read.limitBytes} bytes`
      : `the request body is ${read.declaredBytes} bytes; the limit is ${read.limitBytes} bytes`,
  );
}

/** What one rank's HTTP server serves besides generation. */
export interface RankServerOptions {
  readonly context: RankContext;
  readonly faults: Faults;
  readonly maxBodyBytes: number;
  /** The rank's Prometheus exposition. */
  readonly metrics: () => Promise<{ contentType: string; text: string }>;
  readonly log: (message: string) => void;
}

/**
 * The HTTP surface of one DP rank: `/v1/models`, `/v1/completions`, `/v1/chat/completions`, `/health`,
 * `/metrics`. Every failure is answered with vLLM's error body; nothing a client sends ends the process.
 */
export function serveRank(server: Server, options: RankServerOptions): void {
  const { context: ctx, faults } = options;
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? "/").split("?")[0]!;
    const kind = GENERATION_PATHS[path];
    if (kind !== undefined) {
      if (req.method !== "POST") throw new HttpError(405, `${path} takes POST`);
      if (faults.takeDrop()) {
        req.socket.destroy();
        return;
      }
      const failure = faults.takeFailure();
      if (failure !== undefined) {
        req.resume();
        const body =
          failure.body === undefined
            ? errorBody(failure.status, `injected failure (status ${failure.status})`)
            : typeof failure.body === "string"
              ? failure.body
              : JSON.stringify(failure.body);
        send(res, failure.status, body, { ...JSON_TYPE, ...inferenceHeaders(ctx) });
        return;
      }
      const read = await readBody(req, options.maxBodyBytes);
      if (!read.ok) throw tooLarge(res, read);
      await serveGeneration(ctx, kind, req, res, read.body.toString("utf8"));
      return;
    }
    req.resume();
    if (req.method !== "GET")
      throw new HttpError(req.method === "POST" ? 404 : 405, `no ${req.method} route for ${path}`);
    switch (path) {
      case "/health":
        res.writeHead(200, inferenceHeaders(ctx));
        res.end();
        return;
      case "/v1/models":
        sendJson(
          res,
          200,
          {
            object: "list",
            data: [
              {
                id: ctx.servedModelName,
                object: "model",
                created: 0,
                owned_by: "vllm",
                root: ctx.servedModelName,
                parent: null,
                max_model_len: ctx.engine.config.maxModelLen,
              },
              ...ctx.loraModules.map((name) => ({
                id: name,
                object: "model",
                created: 0,
                owned_by: "vllm",
                root: name,
                parent: ctx.servedModelName,
                max_model_len: ctx.engine.config.maxModelLen,
              })),
            ],
          },
          inferenceHeaders(ctx),
        );
        return;
      case "/metrics": {
        const { contentType, text } = await options.metrics();
        res.writeHead(200, { "content-type": contentType });
        res.end(text);
        return;
      }
      default:
        throw new HttpError(
          404,
          `no route for ${path} (served: /v1/models, /v1/completions, /v1/chat/completions, /health, /metrics)`,
        );
    }
  };
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((error: unknown) => {
      if (error instanceof HttpError) {
        send(res, error.status, errorBody(error.status, error.message, error.param), {
          ...JSON_TYPE,
          ...inferenceHeaders(ctx),
        });
        return;
      }
      options.log(`mocker ${ctx.workerName} rank ${ctx.rank}: ${(error as Error).stack ?? String(error)}`);
      send(res, 500, errorBody(500, `internal error: ${(error as Error).message}`), JSON_TYPE);
    });
  });
}
