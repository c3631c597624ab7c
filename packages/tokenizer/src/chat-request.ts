import { InvalidRequest } from "./errors.js";
import type { JsonObject, JsonValue } from "./model-files.js";
import { parseLosslessJson } from "./lossless-json.js";
import { isJsonObject, optionalBoolean, requestObject, truncation } from "./request-fields.js";

/**
 * How message content reaches the template: joined text (`string`, most templates) or a list of
 * `{type: "text", text}` parts (`openai`, templates that loop over `message.content`).
 */
export type ContentFormat = "string" | "openai";

/** A chat completions request reduced to what the chat template and the tokenizer need. */
export interface ChatRequest {
  /** Messages as the engine hands them to the template (vLLM's normalisation). */
  readonly messages: JsonObject[];
  readonly tools?: JsonObject[];
  readonly documents?: JsonValue;
  readonly addGenerationPrompt: boolean;
  readonly continueFinalMessage: boolean;
  /** `chat_template_kwargs`, e.g. `{enable_thinking: false}`. */
  readonly templateKwargs: JsonObject;
  /** Whether the tokenizer's post-processor adds its special tokens too (default false: the template has them). */
  readonly addSpecialTokens: boolean;
  readonly truncatePromptTokens?: number;
}

/** Template variables a request may not override through `chat_template_kwargs`. */
const RESERVED_TEMPLATE_VARIABLES = new Set([
  "messages",
  "tools",
  "documents",
  "add_generation_prompt",
  "continue_final_message",
  "chat_template",
]);

function contentText(content: JsonValue | undefined, field: string): string[] {
  if (content === undefined || content === null) return [];
  if (typeof content === "string") return [content];
  if (!Array.isArray(content)) throw new InvalidRequest(field, "expected a string, null or an array of content parts");
  return content.map((part, index) => {
    const partField = `${field}[${index}]`;
    if (typeof part === "string") return part;
    if (!isJsonObject(part)) throw new InvalidRequest(partField, "expected a content part object");
    if (part["type"] !== "text") {
      throw new InvalidRequest(`${partField}.type`, `unsupported content part type ${JSON.stringify(part["type"])}`);
    }
    if (typeof part["text"] !== "string") throw new InvalidRequest(`${partField}.text`, "expected a string");
    return part["text"];
  });
}

/** Tool-call arguments reach templates as objects: a JSON string is parsed, empty becomes `{}`. */
function toolCall(call: JsonValue, field: string): JsonObject {
  if (!isJsonObject(call)) throw new InvalidRequest(field, "expected a tool call object");
  const fn = call["function"];
  if (!isJsonObject(fn)) throw new InvalidRequest(`${field}.function`, "expected an object");
  if (typeof fn["name"] !== "string") throw new InvalidRequest(`${field}.function.name`, "expected a string");
  const args = fn["arguments"];
  let parsed: JsonValue;
  if (args === undefined || args === null || args === "") {
    parsed = {};
  } else if (typeof args === "string") {
    parsed = parseLosslessJson(args, `${field}.function.arguments`);
  } else if (typeof args === "object") {
    parsed = args;
  } else {
    throw new InvalidRequest(`${field}.function.arguments`, "expected a JSON string or object");
  }
  return { ...call, function: { ...fn, arguments: parsed } };
}

function message(raw: JsonValue, index: number, format: ContentFormat): JsonObject {
  const field = `messages[${index}]`;
  if (!isJsonObject(raw)) throw new InvalidRequest(field, "expected a message object");
  const role = raw["role"];
  if (typeof role !== "string" || role.length === 0) throw new InvalidRequest(`${field}.role`, "expected a string");
  const texts = contentText(raw["content"], `${field}.content`);
  const content: JsonValue = format === "string" ? texts.join("\n") : texts.map((text) => ({ type: "text", text }));
  const out: JsonObject = { role, content };
  if (role === "assistant") {
    const calls = raw["tool_calls"];
    if (calls !== undefined && calls !== null) {
      if (!Array.isArray(calls)) throw new InvalidRequest(`${field}.tool_calls`, "expected an array");
      // An empty list is dropped so templates take their plain assistant path.
      if (calls.length > 0) out["tool_calls"] = calls.map((call, i) => toolCall(call, `${field}.tool_calls[${i}]`));
    }
    const reasoning = raw["reasoning"] ?? raw["reasoning_content"];
    if (reasoning !== undefined && reasoning !== null) {
      if (typeof reasoning !== "string") throw new InvalidRequest(`${field}.reasoning_content`, "expected a string");
      out["reasoning"] = reasoning;
      out["reasoning_content"] = reasoning;
    }
  } else if (role === "tool" && raw["tool_call_id"] !== undefined) {
    out["tool_call_id"] = raw["tool_call_id"];
  }
  if (typeof raw["name"] === "string") out["name"] = raw["name"];
  if (role === "developer") out["tools"] = raw["tools"] ?? null;
  return out;
}

/** Tools as the engine dumps them for the template: declared fields first, absent ones as null. */
function tool(raw: JsonValue, index: number): JsonObject {
  const field = `tools[${index}]`;
  if (!isJsonObject(raw)) throw new InvalidRequest(field, "expected a tool object");
  if (raw["type"] !== undefined && raw["type"] !== "function") {
    throw new InvalidRequest(`${field}.type`, 'expected "function"');
  }
  const fn = raw["function"];
  if (!isJsonObject(fn)) throw new InvalidRequest(`${field}.function`, "expected an object");
  const { name, description, parameters, ...fnExtra } = fn;
  if (typeof name !== "string") throw new InvalidRequest(`${field}.function.name`, "expected a string");
  if (description !== undefined && description !== null && typeof description !== "string") {
    throw new InvalidRequest(`${field}.function.description`, "expected a string");
  }
  if (parameters !== undefined && parameters !== null && !isJsonObject(parameters)) {
    throw new InvalidRequest(`${field}.function.parameters`, "expected an object");
  }
  const { type: _type, function: _function, ...toolExtra } = raw;
  return {
    type: "function",
    function: { name, description: description ?? null, parameters: parameters ?? null, ...fnExtra },
    ...toolExtra,
  };
}

/** Checks and normalises a `/v1/chat/completions` body. */
export function parseChatRequest(body: unknown, format: ContentFormat): ChatRequest {
  const request = requestObject(body);
  const rawMessages = request["messages"];
  if (!Array.isArray(rawMessages)) throw new InvalidRequest("messages", "expected an array");
  if (rawMessages.length === 0) throw new InvalidRequest("messages", "must not be empty");
  const messages = rawMessages.map((raw, index) => message(raw, index, format));

  const rawTools = request["tools"];
  let tools: JsonObject[] | undefined;
  if (rawTools !== undefined && rawTools !== null) {
    if (!Array.isArray(rawTools)) throw new InvalidRequest("tools", "expected an array");
    tools = rawTools.map(tool);
  }

  const rawKwargs = request["chat_template_kwargs"];
  let templateKwargs: JsonObject = {};
  if (rawKwargs !== undefined && rawKwargs !== null) {
    if (!isJsonObject(rawKwargs)) throw new InvalidRequest("chat_template_kwargs", "expected an object");
    for (const key of Object.keys(rawKwargs)) {
      if (RESERVED_TEMPLATE_VARIABLES.has(key)) {
        throw new InvalidRequest(`chat_template_kwargs.${key}`, "set by the request itself, not a template argument");
      }
    }
    templateKwargs = rawKwargs;
  }
  if (request["chat_template"] !== undefined && request["chat_template"] !== null) {
    throw new InvalidRequest("chat_template", "request-supplied chat templates are not accepted");
  }

  const continueFinalMessage = optionalBoolean(request, "continue_final_message", false);
  const addGenerationPrompt = optionalBoolean(request, "add_generation_prompt", true);
  if (continueFinalMessage && addGenerationPrompt) {
    throw new InvalidRequest("continue_final_message", "cannot be combined with add_generation_prompt");
  }
  const documents = request["documents"];
  const truncatePromptTokens = truncation(request);
  return {
    messages,
    ...(tools !== undefined && { tools }),
    ...(documents !== undefined && documents !== null && { documents }),
    addGenerationPrompt,
    continueFinalMessage,
    templateKwargs,
    addSpecialTokens: optionalBoolean(request, "add_special_tokens", false),
    ...(truncatePromptTokens !== undefined && { truncatePromptTokens }),
  };
}
