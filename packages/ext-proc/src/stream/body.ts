import type { BodyRewrite, RequestBody } from "../types.js";

const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true });

/** A parsed request body (with its text), or the reason it cannot be routed (answered with 400). */
export type ParsedBody = { ok: true; json: unknown; text: string } | { ok: false; message: string };

/** Decodes the body as strict UTF-8 and parses it as JSON. */
export function parseJsonBody(bytes: Buffer): ParsedBody {
  let text: string;
  try {
    text = STRICT_UTF8.decode(bytes);
  } catch {
    return { ok: false, message: "request body is not valid UTF-8; send UTF-8 encoded JSON" };
  }
  try {
    return { ok: true, json: JSON.parse(text), text };
  } catch (error) {
    return { ok: false, message: `request body is not valid JSON: ${(error as Error).message}` };
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The body to forward, and a warning when a requested rewrite had to be skipped. */
export interface RewriteResult {
  bytes: Buffer;
  warning?: string;
}

/**
 * Applies a router's body rewrite. `tokenData` sets `nvext.token_data` (creating `nvext` when absent,
 * keeping every other field) and re-serializes compactly; when the body or its `nvext` is not an object
 * the original bytes go through with a warning. `replace` sends the given bytes.
 */
export function rewriteBody(body: RequestBody, rewrite: BodyRewrite | undefined): RewriteResult {
  if (rewrite === undefined) return { bytes: body.bytes };
  if ("replace" in rewrite) return { bytes: Buffer.from(rewrite.replace) };
  const json = body.json;
  if (!isObject(json)) {
    return { bytes: body.bytes, warning: "request body is not a JSON object; nvext.token_data not injected" };
  }
  const nvext = json["nvext"];
  if (nvext !== undefined && !isObject(nvext)) {
    return { bytes: body.bytes, warning: "request nvext is not a JSON object; nvext.token_data not injected" };
  }
  if (nvext === undefined) {
    const spliced = appendTokenData(body.bytes, json, rewrite.tokenData);
    if (spliced !== undefined) return { bytes: spliced };
  }
  const rewritten = { ...json, nvext: { ...nvext, token_data: Array.from(rewrite.tokenData) } };
  return { bytes: Buffer.from(JSON.stringify(rewritten), "utf8") };
}

const CLOSING_BRACE = 0x7d;
const COMMA = 0x2c;
const DIGIT_0 = 0x30;
const UINT32_LIMIT = 2 ** 32;

/**
 * Adds `"nvext":{"token_data":[...]}` at the end of a JSON object's text without re-serializing the rest (the
 * common case: a body without `nvext`), writing the token ids as digits straight into the new body: no text of
 * them is built, joined, flattened and encoded (on a 20,000-token prompt that was most of the rewrite's time).
 * A value that is not a uint32 (not a tokenizer's id) is written as `String` writes it. Undefined when the text
 * does not end with the object's `}`.
 */
function appendTokenData(bytes: Buffer, json: Record<string, unknown>, tokens: ArrayLike<number>): Buffer | undefined {
  let end = bytes.length - 1;
  while (end >= 0 && (bytes[end] === 0x20 || bytes[end] === 0x0a || bytes[end] === 0x0d || bytes[end] === 0x09)) end--;
  if (end < 0 || bytes[end] !== CLOSING_BRACE) return undefined;
  const head = `${Object.keys(json).length === 0 ? "" : ","}"nvext":{"token_data":[`;
  const tail = "]}}";
  let size = end + head.length + tail.length + Math.max(0, tokens.length - 1);
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    size += isUint32(token) ? digitCount(token) : Buffer.byteLength(String(token));
  }
  const out = Buffer.allocUnsafe(size);
  bytes.copy(out, 0, 0, end);
  let at = end + out.write(head, end, "latin1");
  for (let i = 0; i < tokens.length; i++) {
    if (i > 0) out[at++] = COMMA;
    let value = tokens[i]!;
    if (!isUint32(value)) {
      at += out.write(String(value), at, "utf8");
      continue;
    }
    at += digitCount(value);
    let p = at;
    do {
      const quotient = (value / 10) >>> 0; // uint32 arithmetic: three times faster than % and / on doubles
      out[--p] = DIGIT_0 + value - quotient * 10;
      value = quotient;
    } while (value !== 0);
  }
  out.write(tail, at, "latin1");
  return out;
}

function isUint32(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value < UINT32_LIMIT;
}

/** Decimal digits of a uint32. */
function digitCount(value: number): number {
  if (value < 100_000) return value < 10 ? 1 : value < 100 ? 2 : value < 1_000 ? 3 : value < 10_000 ? 4 : 5;
  return value < 1_000_000 ? 6 : value < 10_000_000 ? 7 : value < 100_000_000 ? 8 : value < 1_000_000_000 ? 9 : 10;
}
