import { InvalidRequest } from "./errors.js";
import { numericValue } from "./lossless-json.js";
import type { JsonValue } from "./model-files.js";
import { optionalBoolean, requestObject, truncation } from "./request-fields.js";

/**
 * The prompt of a `/v1/completions` body that routing uses. A batch (several prompts) routes on its
 * first non-empty prompt and is not injectable: ids injected into the body would stand for all of it.
 */
export type CompletionsPrompt =
  | {
      readonly kind: "text";
      readonly text: string;
      readonly addSpecialTokens: boolean;
      readonly injectable: boolean;
      readonly truncatePromptTokens?: number;
    }
  | {
      readonly kind: "token-ids";
      readonly ids: Uint32Array;
      readonly injectable: boolean;
      readonly truncatePromptTokens?: number;
    };

const MAX_TOKEN_ID = 0xffffffff;

function tokenIds(value: readonly JsonValue[], field: string, vocabSize: number): Uint32Array {
  const ids = new Uint32Array(value.length);
  value.forEach((raw, index) => {
    const id = numericValue(raw) ?? raw;
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > MAX_TOKEN_ID) {
      throw new InvalidRequest(`${field}[${index}]`, "expected a non-negative integer token id");
    }
    if (id >= vocabSize) throw new InvalidRequest(`${field}[${index}]`, `token id ${id} is outside the vocabulary`);
    ids[index] = id;
  });
  return ids;
}

const isTokenIdList = (value: readonly JsonValue[]): boolean =>
  value.length > 0 && numericValue(value[0]) !== undefined;

/** Checks a `/v1/completions` body and picks the prompt to route on. */
export function parseCompletionsRequest(body: unknown, vocabSize: number): CompletionsPrompt {
  const request = requestObject(body);
  const prompt = request["prompt"];
  const truncatePromptTokens = truncation(request);
  const truncated = truncatePromptTokens === undefined ? {} : { truncatePromptTokens };
  const text = (value: string, field: string, injectable: boolean): CompletionsPrompt => {
    if (value.length === 0) throw new InvalidRequest(field, "must not be empty");
    const addSpecialTokens = optionalBoolean(request, "add_special_tokens", true);
    return { kind: "text", text: value, addSpecialTokens, injectable, ...truncated };
  };
  if (typeof prompt === "string") return text(prompt, "prompt", true);
  if (!Array.isArray(prompt)) {
    throw new InvalidRequest("prompt", "expected a string, an array of strings, or token ids");
  }
  if (prompt.length === 0) throw new InvalidRequest("prompt", "must not be empty");
  if (isTokenIdList(prompt))
    return { kind: "token-ids", ids: tokenIds(prompt, "prompt", vocabSize), injectable: true, ...truncated };
  const injectable = prompt.length === 1;
  if (typeof prompt[0] === "string") {
    prompt.forEach((entry, index) => {
      if (typeof entry !== "string") throw new InvalidRequest(`prompt[${index}]`, "expected a string");
    });
    return text(prompt[0], "prompt[0]", injectable);
  }
  let chosen: { ids: readonly JsonValue[]; index: number } | undefined;
  prompt.forEach((entry, index) => {
    if (!Array.isArray(entry)) throw new InvalidRequest(`prompt[${index}]`, "expected an array of token ids");
    if (chosen === undefined && entry.length > 0) chosen = { ids: entry, index };
  });
  if (chosen === undefined) throw new InvalidRequest("prompt", "every prompt is empty");
  const ids = tokenIds(chosen.ids, `prompt[${chosen.index}]`, vocabSize);
  return { kind: "token-ids", ids, injectable, ...truncated };
}
