import { Template } from "@huggingface/jinja";
import type { ChatRequest, ContentFormat } from "./chat-request.js";
import { InvalidRequest } from "./errors.js";
import { isJsonObject } from "./request-fields.js";
import { specialTokenContent, type JsonObject, type ModelFiles } from "./model-files.js";
import { renderTemplate } from "./template-runtime.js";

const SPECIAL_TOKEN_ATTRIBUTES = [
  "bos_token",
  "eos_token",
  "unk_token",
  "sep_token",
  "pad_token",
  "cls_token",
  "mask_token",
] as const;

/** A template that loops over `message.content` expects content parts, not a string. */
const LOOPS_OVER_CONTENT = /\{%-?\s*for\s+\w+\s+in\s+\w+\s*(?:\.content\b|\[\s*['"]content['"]\s*\])/;

/** The special-token variables every template sees (`bos_token`, `eos_token`, ...), as Transformers sets them. */
function specialTokenVariables(config: JsonObject): JsonObject {
  const variables: JsonObject = {};
  for (const attribute of SPECIAL_TOKEN_ATTRIBUTES) {
    const content = specialTokenContent(config[attribute]);
    if (content !== null) variables[attribute] = content;
  }
  const additional = config["additional_special_tokens"];
  if (Array.isArray(additional)) {
    variables["additional_special_tokens"] = additional.map(specialTokenContent).filter((t) => t !== null);
  }
  return variables;
}

/** Keeps the rendered prompt up to the end of the final message, so generation continues it. */
function cutAfterFinalMessage(rendered: string, request: ChatRequest): string {
  const content = request.messages[request.messages.length - 1]!["content"];
  const lastPart = Array.isArray(content) ? content[content.length - 1] : undefined;
  const final = typeof content === "string" ? content : isJsonObject(lastPart) ? String(lastPart["text"]) : "";
  for (const candidate of [final, final.trim()]) {
    const at = rendered.lastIndexOf(candidate);
    if (at >= 0 && candidate.length > 0) return rendered.slice(0, at + candidate.length);
  }
  throw new InvalidRequest("continue_final_message", "the final message does not appear in the rendered prompt");
}

/** The chat templates of one model, compiled on first use. */
export class ChatTemplates {
  readonly contentFormat: ContentFormat;
  private readonly variables: JsonObject;
  private readonly compiled = new Map<string, Template>();

  constructor(private readonly files: ModelFiles) {
    this.variables = specialTokenVariables(files.config);
    this.contentFormat =
      files.chatTemplate !== undefined && LOOPS_OVER_CONTENT.test(files.chatTemplate) ? "openai" : "string";
  }

  get available(): boolean {
    return this.files.chatTemplate !== undefined || this.files.namedChatTemplates.size > 0;
  }

  /** Renders the conversation to the prompt text the engine would tokenize. */
  render(request: ChatRequest): string {
    const template = this.template(request.tools !== undefined);
    let rendered: string;
    try {
      rendered = renderTemplate(template, {
        ...this.variables,
        ...request.templateKwargs,
        messages: request.messages,
        tools: request.tools ?? null,
        documents: request.documents ?? null,
        add_generation_prompt: request.addGenerationPrompt,
      });
    } catch (error) {
      throw new InvalidRequest("messages", `chat template failed: ${(error as Error).message}`);
    }
    return request.continueFinalMessage ? cutAfterFinalMessage(rendered, request) : rendered;
  }

  private template(withTools: boolean): Template {
    const named = this.files.namedChatTemplates;
    const name = withTools && named.has("tool_use") ? "tool_use" : "default";
    const source = name === "tool_use" ? named.get(name) : (this.files.chatTemplate ?? named.get(name));
    if (source === undefined) throw new InvalidRequest("messages", "the model has no chat template");
    let template = this.compiled.get(name);
    if (template === undefined) {
      try {
        template = new Template(source);
      } catch (error) {
        throw new InvalidRequest("messages", `chat template does not compile: ${(error as Error).message}`);
      }
      this.compiled.set(name, template);
    }
    return template;
  }
}
