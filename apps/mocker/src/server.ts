import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { HttpError, errorBody } from "./errors.js";
import type { Faults } from "./faults.js";
import { inferenceHeaders, serveGeneration, type RankContext } from "./generate.js";
import type { RequestKind } from "./request.js";

const GENERATION_PATHS: Readonly<Record<string, RequestKind>> = {
  "/v1/chat/completions": "chat",
  "/v1/completions": "completions",
};

/** Reads a request body up to `limit` bytes; a larger one is refused with 413 before it is all read. */
function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"]);
    if (Number.isFinite(declared) && declared > limit) {
      reject(new HttpError(413, `the request body is ${declared} bytes; the limit is ${limit} bytes`));
      return;
    }
    const parts: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new HttpError(413, `the request body is over the limit of ${limit} bytes`));
        req.removeAllListeners("data");
        req.resume();
        return;
      }
      parts.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(parts).toString("utf8")));
    req.on("error", reject);
  });
}

function sendJson(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(body);
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
        sendJson(res, failure.status, body, inferenceHeaders(ctx));
        return;
      }
      const body = await readBody(req, options.maxBodyBytes);
      await serveGeneration(ctx, kind, req, res, body);
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
          JSON.stringify({
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
          }),
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
        sendJson(res, error.status, errorBody(error.status, error.message, error.param), inferenceHeaders(ctx));
        return;
      }
      options.log(`mocker ${ctx.workerName} rank ${ctx.rank}: ${(error as Error).stack ?? String(error)}`);
      sendJson(res, 500, errorBody(500, `internal error: ${(error as Error).message}`));
    });
  });
}

/** Listens on `port` (0: a free one) and returns the bound port. */
export function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
