import { InvalidRequest } from "./errors.js";
import { isPythonNumber, numericValue, parseLosslessJson } from "./lossless-json.js";
import type { JsonObject, JsonValue } from "./model-files.js";

/** Small readers for request bodies: each throws `InvalidRequest` naming the field it was given. */

export function isJsonObject(value: unknown): value is JsonObject {
  return value !== null && typeof value === "object" && !Array.isArray(value) && !isPythonNumber(value);
}

/** The body as an object: parsed objects as they are, JSON text parsed as the engine parses it. */
export function requestObject(body: unknown): JsonObject {
  const parsed = typeof body === "string" ? parseLosslessJson(body, "body") : body;
  if (!isJsonObject(parsed)) throw new InvalidRequest("body", "expected a JSON object");
  return parsed;
}

export function optionalBoolean(body: JsonObject, field: string, fallback: boolean): boolean {
  const value = body[field];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "boolean") throw new InvalidRequest(field, "expected a boolean");
  return value;
}

/** `truncate_prompt_tokens`: keep only the last N prompt tokens (absent, null or -1: keep all). */
export function truncation(body: JsonObject): number | undefined {
  const raw: JsonValue | undefined = body["truncate_prompt_tokens"];
  const value = raw === undefined || raw === null ? raw : (numericValue(raw) ?? raw);
  if (value === undefined || value === null || value === -1) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new InvalidRequest("truncate_prompt_tokens", "expected a positive integer or -1");
  }
  return value;
}
