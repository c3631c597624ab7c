import { StringDecoder } from "node:string_decoder";
import type { Usage } from "../types.js";
import { parseUsage, usageFromJsonTail } from "./usage.js";

/** Bound on the bytes kept from a response for usage parsing (SSE partial line or JSON tail). */
export const USAGE_TAIL_BYTES = 64 * 1024;

function generatedContent(event: Record<string, unknown>): boolean {
  const choices = event["choices"];
  if (!Array.isArray(choices) || choices.length === 0) return false;
  const choice = choices[0] as Record<string, unknown> | null;
  if (typeof choice !== "object" || choice === null) return false;
  const text = choice["text"];
  if (typeof text === "string" && text !== "") return true;
  const delta = choice["delta"] as Record<string, unknown> | null | undefined;
  if (typeof delta !== "object" || delta === null) return false;
  const content = delta["content"];
  const reasoning = delta["reasoning_content"];
  const toolCalls = delta["tool_calls"];
  return (
    (typeof content === "string" && content !== "") ||
    (typeof reasoning === "string" && reasoning !== "") ||
    (Array.isArray(toolCalls) && toolCalls.length > 0)
  );
}

/**
 * Watches a response body as it streams by, with bounded memory. SSE (`text/event-stream`): complete
 * `data:` lines are parsed; `[DONE]` is skipped; the last event carrying `usage` wins; the partial line
 * kept across chunks is bounded by `USAGE_TAIL_BYTES` (a longer line is dropped). Generated tokens:
 * an event's `usage.completion_tokens` sets the count, otherwise an event with non-empty generated
 * content in `choices[0]` adds one. Other bodies: the last `USAGE_TAIL_BYTES` are kept and `usage` is read
 * from them at the end.
 */
export class ResponseBodyObserver {
  generatedTokens = 0;
  usage: Usage | undefined;
  private readonly decoder = new StringDecoder("utf8");
  private partial = "";
  private droppingLine = false;
  private tail: Buffer[] = [];
  private tailBytes = 0;
  private finished = false;

  constructor(
    private readonly streaming: boolean,
    /** Parse every event for token counting (otherwise only events that mention `usage`). */
    private readonly countTokens: boolean,
  ) {}

  /** Feeds one body chunk; returns true when `generatedTokens` grew. */
  push(chunk: Buffer): boolean {
    if (this.finished || chunk.length === 0) return false;
    if (!this.streaming) {
      this.keepTail(chunk);
      return false;
    }
    const before = this.generatedTokens;
    const text = this.partial + this.decoder.write(chunk);
    let start = 0;
    for (let newline = text.indexOf("\n"); newline >= 0; newline = text.indexOf("\n", start)) {
      if (this.droppingLine) this.droppingLine = false;
      else this.line(text.slice(start, newline));
      start = newline + 1;
    }
    this.partial = text.slice(start);
    if (this.partial.length > USAGE_TAIL_BYTES) {
      this.partial = "";
      this.droppingLine = true;
    }
    return this.generatedTokens > before;
  }

  /** The body ended: reads a final unterminated SSE line, or `usage` from the JSON tail. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.streaming) {
      const rest = this.partial + this.decoder.end();
      if (!this.droppingLine && rest !== "") this.line(rest);
      this.partial = "";
      return;
    }
    const tail = Buffer.concat(this.tail).toString("utf8");
    this.tail = [];
    this.usage = usageFromJsonTail(tail) ?? this.usage;
  }

  private keepTail(chunk: Buffer): void {
    this.tail.push(chunk);
    this.tailBytes += chunk.length;
    while (this.tail.length > 1 && this.tailBytes - this.tail[0]!.length >= USAGE_TAIL_BYTES) {
      this.tailBytes -= this.tail.shift()!.length;
    }
    if (this.tailBytes > 2 * USAGE_TAIL_BYTES) {
      const joined = Buffer.concat(this.tail);
      this.tail = [joined.subarray(joined.length - USAGE_TAIL_BYTES)];
      this.tailBytes = USAGE_TAIL_BYTES;
    }
  }

  private line(raw: string): void {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (!line.startsWith("data:")) return;
    const payload = line.slice(5).trim();
    if (payload === "" || payload === "[DONE]") return;
    const mentionsUsage = payload.includes('"usage"');
    if (!mentionsUsage && !this.countTokens) return;
    let event: unknown;
    try {
      event = JSON.parse(payload);
    } catch {
      return;
    }
    if (typeof event !== "object" || event === null || Array.isArray(event)) return;
    const record = event as Record<string, unknown>;
    const usage = mentionsUsage ? parseUsage(record["usage"]) : undefined;
    if (usage !== undefined) this.usage = usage;
    if (usage?.completionTokens !== undefined) this.generatedTokens = usage.completionTokens;
    else if (generatedContent(record)) this.generatedTokens++;
  }
}
