import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { completionChunkMapper, completionToChat } from "./chat-shape.js";
import { readText } from "./engine-client.js";
import type { JsonObject } from "./engine-request.js";
import { SseRewriter, sseEvent, withCachedTokens, type ChunkMap } from "./sse.js";

/** How an engine response is changed on its way to the client. */
export interface Rewrite {
  /** The engine answered a completion for a chat request: map back to chat shape. */
  readonly chatAsCompletion: boolean;
  /** The prefill worker's `cached_tokens`, replacing the decode engine's (disaggregated requests). */
  readonly cachedTokens: number | undefined;
}

/** Called once, when the first response byte is handed to the client's socket. */
export type FirstByte = () => void;

const DROPPED = new Set(["content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding"]);

/** The engine's response headers a client may see (framing is this server's own). */
export function clientHeaders(upstream: IncomingMessage): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(upstream.headers)) if (!DROPPED.has(name)) out[name] = value;
  return out;
}

function chunkMap(rewrite: Rewrite): ChunkMap | undefined {
  const chat = rewrite.chatAsCompletion ? completionChunkMapper() : undefined;
  const cached = rewrite.cachedTokens;
  if (chat === undefined && cached === undefined) return undefined;
  if (cached === undefined) return chat;
  if (chat === undefined) return (chunk) => withCachedTokens(chunk, cached);
  return (chunk) => withCachedTokens(chat(chunk), cached);
}

/** A whole response body in the client's shape. */
export function rewriteBody(body: JsonObject, rewrite: Rewrite): JsonObject {
  const shaped = rewrite.chatAsCompletion ? completionToChat(body) : body;
  return rewrite.cachedTokens === undefined ? shaped : withCachedTokens(shaped, rewrite.cachedTokens);
}

/** Writes JSON events as a complete SSE stream ending in `[DONE]`. */
export function writeEvents(res: ServerResponse, events: readonly JsonObject[], firstByte: FirstByte): void {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  firstByte();
  res.end(events.map((event) => sseEvent(JSON.stringify(event))).join("") + sseEvent("[DONE]"));
}

/**
 * Streams an engine response to the client. SSE goes through chunk by chunk as it arrives (raw bytes
 * when nothing changes, else event by event through `SseRewriter`), with backpressure both ways; an
 * error status or a body needing no change is piped as is; a JSON body that needs changes is read whole,
 * rewritten and sent. Resolves when the client has the whole response, rejects when either side broke.
 */
export function relay(
  res: ServerResponse,
  upstream: IncomingMessage,
  rewrite: Rewrite,
  firstByte: FirstByte,
  maxBodyBytes: number,
): Promise<void> {
  const status = upstream.statusCode ?? 502;
  const map = status === 200 ? chunkMap(rewrite) : undefined;
  const streaming = (upstream.headers["content-type"] ?? "").includes("text/event-stream");
  if (map !== undefined && !streaming) {
    return readText(upstream, maxBodyBytes).then((text) => {
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        body = undefined;
      }
      const out =
        body !== null && typeof body === "object" && !Array.isArray(body)
          ? JSON.stringify(rewriteBody(body as JsonObject, rewrite))
          : text;
      res.writeHead(status, { ...clientHeaders(upstream), "content-length": Buffer.byteLength(out) });
      firstByte();
      res.end(out);
    });
  }
  return new Promise<void>((resolve, reject) => {
    res.writeHead(status, clientHeaders(upstream));
    res.flushHeaders();
    const rewriter = map === undefined ? undefined : new SseRewriter(map);
    let first = true;
    const write = (data: Buffer | string) => {
      if (data.length === 0) return;
      if (first) {
        first = false;
        firstByte();
      }
      if (!res.write(data)) {
        upstream.pause();
        res.once("drain", () => upstream.resume());
      }
    };
    upstream.on("data", (chunk: Buffer) => write(rewriter === undefined ? chunk : rewriter.push(chunk)));
    upstream.on("end", () => {
      if (rewriter !== undefined) write(rewriter.end());
      if (first) firstByte();
      res.end(resolve);
    });
    const broken = (error: Error) => {
      res.destroy();
      reject(error);
    };
    upstream.on("error", broken);
    upstream.on("aborted", () => broken(new Error("the engine's response was cut short")));
  });
}
