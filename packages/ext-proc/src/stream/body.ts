import type { BodyRewrite, RequestBody } from "../types.js";

const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true });

/** A parsed request body, or the reason it cannot be routed (answered with 400). */
export type ParsedBody = { ok: true; json: unknown } | { ok: false; message: string };

/** Decodes the body as strict UTF-8 and parses it as JSON. */
export function parseJsonBody(bytes: Buffer): ParsedBody {
  let text: string;
  try {
    text = STRICT_UTF8.decode(bytes);
  } catch {
    return { ok: false, message: "request body is not valid UTF-8; send UTF-8 encoded JSON" };
  }
  try {
    return { ok: true, json: JSON.parse(text) };
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
    const spliced = appendMember(body.bytes, json, "nvext", `{"token_data":[${tokenText(rewrite.tokenData)}]}`);
    if (spliced !== undefined) return { bytes: spliced };
  }
  const rewritten = { ...json, nvext: { ...nvext, token_data: Array.from(rewrite.tokenData) } };
  return { bytes: Buffer.from(JSON.stringify(rewritten), "utf8") };
}

/**
 * Token ids as JSON array members (`1,2,3`), for plain arrays and typed arrays alike. Concatenated by hand:
 * `Array.prototype.join` over a typed array reads every element through the generic path, six times slower on
 * a 20,000-token prompt (3.2 against 0.55 ms).
 */
function tokenText(tokens: ArrayLike<number>): string {
  if (tokens.length === 0) return "";
  let text = String(tokens[0]);
  for (let i = 1; i < tokens.length; i++) text += "," + tokens[i]!;
  return text;
}

const CLOSING_BRACE = 0x7d;

/**
 * Adds `"key": value` at the end of a JSON object's text without re-serializing the rest (the common
 * case: a body without `nvext`). Undefined when the text does not end with the object's `}`.
 */
function appendMember(
  bytes: Buffer,
  json: Record<string, unknown>,
  key: string,
  valueText: string,
): Buffer | undefined {
  let end = bytes.length - 1;
  while (end >= 0 && (bytes[end] === 0x20 || bytes[end] === 0x0a || bytes[end] === 0x0d || bytes[end] === 0x09)) end--;
  if (end < 0 || bytes[end] !== CLOSING_BRACE) return undefined;
  const separator = Object.keys(json).length === 0 ? "" : ",";
  const member = Buffer.from(`${separator}${JSON.stringify(key)}:${valueText}}`, "utf8");
  return Buffer.concat([bytes.subarray(0, end), member]);
}
