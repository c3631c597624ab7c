import type { Usage } from "../types.js";

function count(value: unknown): number | undefined {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 ? value : undefined;
}

/** Reads an OpenAI `usage` object (all fields optional); undefined for null or a non-object. */
export function parseUsage(value: unknown): Usage | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const usage = value as Record<string, unknown>;
  const details = usage["prompt_tokens_details"];
  const cached =
    typeof details === "object" && details !== null
      ? count((details as Record<string, unknown>)["cached_tokens"])
      : undefined;
  const out: { -readonly [K in keyof Usage]: Usage[K] } = {};
  const prompt = count(usage["prompt_tokens"]);
  const completion = count(usage["completion_tokens"]);
  const total = count(usage["total_tokens"]);
  if (prompt !== undefined) out.promptTokens = prompt;
  if (completion !== undefined) out.completionTokens = completion;
  if (total !== undefined) out.totalTokens = total;
  if (cached !== undefined) out.cachedTokens = cached;
  return out;
}

/** Index just past the JSON object starting at `start` (a `{`), or -1 when it does not close. */
function objectEnd(text: string, start: number): number {
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b) depth++;
    else if (c === 0x7d && --depth === 0) return i + 1;
  }
  return -1;
}

function escaped(text: string, quote: number): boolean {
  let backslashes = 0;
  for (let i = quote - 1; i >= 0 && text.charCodeAt(i) === 0x5c; i--) backslashes++;
  return backslashes % 2 === 1;
}

/**
 * The last `"usage": {...}` object in the tail of a JSON document (the tail may start mid-document).
 * Occurrences inside strings (escaped quotes) are skipped; `"usage": null` yields undefined.
 */
export function usageFromJsonTail(text: string): Usage | undefined {
  let at = text.lastIndexOf('"usage"');
  while (at >= 0) {
    if (!escaped(text, at)) {
      let i = at + 7;
      while (i < text.length && /\s/.test(text[i]!)) i++;
      if (text[i] === ":") {
        i++;
        while (i < text.length && /\s/.test(text[i]!)) i++;
        if (text.startsWith("null", i)) return undefined;
        if (text[i] === "{") {
          const end = objectEnd(text, i);
          if (end > 0) {
            try {
              return parseUsage(JSON.parse(text.slice(i, end)));
            } catch {
              // not JSON after all: look further back
            }
          }
        }
      }
    }
    at = at === 0 ? -1 : text.lastIndexOf('"usage"', at - 1);
  }
  return undefined;
}
