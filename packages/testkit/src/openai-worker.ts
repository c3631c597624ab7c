import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { closeServer, listen, portOf } from "@dynamo/http-server";

export interface SeenRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown> | undefined;
}

export interface TestWorkerOptions {
  /** Delay between SSE chunks (default 0). */
  streamDelayMs?: number;
  /** SSE content chunks before the final one (default: one per word of the reply). */
  streamChunks?: number;
  /** `usage.prompt_tokens_details.cached_tokens` to report (default 0). */
  cachedTokens?: (request: SeenRequest) => number;
}

/**
 * A real HTTP server answering the OpenAI surface like a small engine: `/v1/models`, and
 * `/v1/chat/completions` (buffered or SSE with optional usage). The reply names the worker and echoes
 * what routing told it; prompt tokens are the injected `nvext.token_data` count.
 */
export class TestWorker {
  private constructor(
    readonly name: string,
    private readonly server: Server,
    private readonly host: string,
    private readonly state: { seen: SeenRequest[]; aborted: number },
  ) {}

  /** Requests received, in order. */
  get seen(): SeenRequest[] {
    return this.state.seen;
  }

  /** Streaming responses cut short by the client. */
  get aborted(): number {
    return this.state.aborted;
  }

  /** Starts on a free port of `host` (use distinct loopback IPs: subsets match endpoints by IP). */
  static async start(name: string, host: string, options: TestWorkerOptions = {}): Promise<TestWorker> {
    const state = { seen: [] as SeenRequest[], aborted: 0 };
    const server = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on("data", (c: Buffer) => parts.push(c));
      req.on("end", () => {
        const text = Buffer.concat(parts).toString();
        const body = text === "" ? undefined : (JSON.parse(text) as Record<string, unknown>);
        state.seen.push({ method: req.method!, path: req.url!, headers: req.headers, body });
        if (req.url === "/v1/models") {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(
            JSON.stringify({
              object: "list",
              data: [{ id: "Qwen/Qwen3-0.6B", object: "model", created: 1753768323, owned_by: name }],
            }),
          );
          return;
        }
        const nvext = (body?.["nvext"] ?? {}) as { token_data?: number[] };
        const promptTokens = nvext.token_data?.length ?? 0;
        const content = `Hello from ${name} (worker id ${req.headers["x-worker-instance-id"] ?? "none"})`;
        const usage = {
          prompt_tokens: promptTokens,
          completion_tokens: 8,
          total_tokens: promptTokens + 8,
          prompt_tokens_details: { cached_tokens: options.cachedTokens?.(state.seen.at(-1)!) ?? 0 },
        };
        const id = "chatcmpl-test";
        if (body?.["stream"] !== true) {
          res.writeHead(200, { "content-type": "application/json", "x-served-by": name });
          res.end(
            JSON.stringify({
              id,
              object: "chat.completion",
              created: 1,
              model: body?.["model"],
              choices: [{ index: 0, finish_reason: "stop", message: { role: "assistant", content } }],
              usage,
            }),
          );
          return;
        }
        res.writeHead(200, { "content-type": "text/event-stream", "x-served-by": name });
        const words = content.split(" ");
        const chunks = options.streamChunks ?? words.length;
        let i = 0;
        const send = () => {
          if (res.destroyed) return;
          if (i < chunks) {
            const word = words[i % words.length]!;
            res.write(
              `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created: 1, model: body["model"], choices: [{ index: 0, delta: { content: (i === 0 ? "" : " ") + word }, finish_reason: null }] })}\n\n`,
            );
            i++;
            setTimeout(send, options.streamDelayMs ?? 0);
            return;
          }
          const includeUsage =
            (body["stream_options"] as { include_usage?: boolean } | undefined)?.include_usage === true;
          res.write(
            `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created: 1, model: body["model"], choices: [{ index: 0, delta: {}, finish_reason: "stop" }] })}\n\n`,
          );
          if (includeUsage)
            res.write(
              `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created: 1, model: body["model"], choices: [], usage })}\n\n`,
            );
          res.end("data: [DONE]\n\n");
        };
        res.on("close", () => {
          if (!res.writableFinished) state.aborted++;
        });
        send();
      });
    });
    await listen(server, 0, host);
    return new TestWorker(name, server, host, state);
  }

  get endpoint(): string {
    return `${this.host}:${portOf(this.server)}`;
  }

  async close(): Promise<void> {
    await closeServer(this.server, { force: true });
  }
}
