import { StringDecoder } from "node:string_decoder";
import type { JsonObject } from "./engine-request.js";

/** A change to every JSON `data:` payload of a stream; `[DONE]` and non-data events pass unchanged. */
export type ChunkMap = (chunk: JsonObject) => JsonObject;

const BOUNDARY = /\r?\n\r?\n/;

/** One SSE event as written: `data: <payload>` and a blank line. */
export function sseEvent(payload: string): string {
  return `data: ${payload}\n\n`;
}

/** Rewrites one complete event (its text without the blank line); non-JSON data is passed on as it was. */
function rewriteEvent(event: string, map: ChunkMap): string {
  const lines = event.split(/\r?\n/);
  const dataLines: string[] = [];
  const other: string[] = [];
  for (const line of lines) {
    if (line.startsWith("data:")) dataLines.push(line.slice(line.startsWith("data: ") ? 6 : 5));
    else other.push(line);
  }
  if (dataLines.length === 0) return `${event}\n\n`;
  const data = dataLines.join("\n");
  if (data === "[DONE]") return `${other.map((l) => `${l}\n`).join("")}${sseEvent(data)}`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    return `${event}\n\n`;
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return `${event}\n\n`;
  return `${other.map((l) => `${l}\n`).join("")}${sseEvent(JSON.stringify(map(parsed as JsonObject)))}`;
}

/**
 * Rewrites a server-sent event stream event by event as bytes arrive: every complete event is
 * returned at once (nothing waits for more than the rest of its own event), a partial event is held
 * until its blank line. UTF-8 split across chunks is decoded correctly.
 */
export class SseRewriter {
  private readonly decoder = new StringDecoder("utf8");
  private pending = "";

  constructor(private readonly map: ChunkMap) {}

  /** The rewritten text of the events completed by `chunk` ("" when none is complete yet). */
  push(chunk: Buffer): string {
    this.pending += this.decoder.write(chunk);
    let out = "";
    for (;;) {
      const match = BOUNDARY.exec(this.pending);
      if (match === null) return out;
      out += rewriteEvent(this.pending.slice(0, match.index), this.map);
      this.pending = this.pending.slice(match.index + match[0].length);
    }
  }

  /** Whatever was left unterminated when the stream ended, as it was. */
  end(): string {
    const rest = this.pending + this.decoder.end();
    this.pending = "";
    return rest;
  }
}

/** Sets `usage.prompt_tokens_details.cached_tokens` (reference §7.6) in a response or chunk that carries usage. */
export function withCachedTokens(body: JsonObject, cachedTokens: number): JsonObject {
  const usage = body["usage"];
  if (usage === null || typeof usage !== "object" || Array.isArray(usage)) return body;
  const details = (usage as JsonObject)["prompt_tokens_details"];
  const detailsObject = details !== null && typeof details === "object" ? (details as JsonObject) : {};
  return {
    ...body,
    usage: { ...(usage as JsonObject), prompt_tokens_details: { ...detailsObject, cached_tokens: cachedTokens } },
  };
}
