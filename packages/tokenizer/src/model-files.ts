import { TokenizerLoadError } from "./errors.js";

/** A JSON value as parsed from a model file. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/**
 * The files of a Hugging Face tokenizer, as text (exactly as read or fetched) or already parsed.
 * Only `tokenizer.json` is required.
 */
export interface TokenizerFiles {
  /** `tokenizer.json`. */
  readonly tokenizer: string | object;
  /** `tokenizer_config.json`: special tokens and, in older models, the chat template. */
  readonly tokenizerConfig?: string | object;
  /** `chat_template.jinja`: when present it wins over `tokenizer_config.json`'s `chat_template`. */
  readonly chatTemplate?: string;
  /** `generation_config.json`: exposed as is (it does not change tokenization). */
  readonly generationConfig?: string | object;
}

/** File names inside a model directory or model card. */
export const TOKENIZER_FILE_NAMES = {
  tokenizer: "tokenizer.json",
  tokenizerConfig: "tokenizer_config.json",
  chatTemplate: "chat_template.jinja",
  generationConfig: "generation_config.json",
} as const;

/** The same files as text, the form they travel in to worker threads. */
export interface TokenizerFileTexts {
  readonly tokenizer: string;
  readonly tokenizerConfig?: string;
  readonly chatTemplate?: string;
  readonly generationConfig?: string;
}

/** Parsed and checked model files. */
export interface ModelFiles {
  readonly tokenizer: JsonObject;
  readonly config: JsonObject;
  /** The chat template source chosen for requests without tools, if the model has one. */
  readonly chatTemplate?: string;
  /** Named templates (`tokenizer_config.json` lists them as `[{name, template}]`). */
  readonly namedChatTemplates: ReadonlyMap<string, string>;
  readonly generationConfig?: JsonObject;
}

export function fileTexts(files: TokenizerFiles): TokenizerFileTexts {
  const text = (value: string | object): string => (typeof value === "string" ? value : JSON.stringify(value));
  return {
    tokenizer: text(files.tokenizer),
    ...(files.tokenizerConfig !== undefined && { tokenizerConfig: text(files.tokenizerConfig) }),
    ...(files.chatTemplate !== undefined && { chatTemplate: files.chatTemplate }),
    ...(files.generationConfig !== undefined && { generationConfig: text(files.generationConfig) }),
  };
}

function parseObject(value: string | object, fileName: string): JsonObject {
  let parsed: unknown = value;
  if (typeof value === "string") {
    try {
      parsed = JSON.parse(value);
    } catch (error) {
      throw new TokenizerLoadError(`${fileName}: not valid JSON (${(error as Error).message})`);
    }
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new TokenizerLoadError(`${fileName}: expected a JSON object`);
  }
  return parsed as JsonObject;
}

/** Parses and checks the files; the chat template is taken from `chat_template.jinja` first. */
export function parseModelFiles(files: TokenizerFiles): ModelFiles {
  const tokenizer = parseObject(files.tokenizer, TOKENIZER_FILE_NAMES.tokenizer);
  const model = tokenizer["model"];
  if (model === null || typeof model !== "object" || Array.isArray(model)) {
    throw new TokenizerLoadError(`${TOKENIZER_FILE_NAMES.tokenizer}: missing "model"`);
  }
  const config =
    files.tokenizerConfig === undefined ? {} : parseObject(files.tokenizerConfig, TOKENIZER_FILE_NAMES.tokenizerConfig);
  const namedChatTemplates = new Map<string, string>();
  let chatTemplate: string | undefined = files.chatTemplate;
  const configTemplate = config["chat_template"];
  if (typeof configTemplate === "string") {
    chatTemplate ??= configTemplate;
  } else if (Array.isArray(configTemplate)) {
    for (const entry of configTemplate) {
      if (entry !== null && typeof entry === "object" && !Array.isArray(entry)) {
        const { name, template } = entry;
        if (typeof name === "string" && typeof template === "string") namedChatTemplates.set(name, template);
      }
    }
    chatTemplate ??= namedChatTemplates.get("default");
  }
  return {
    tokenizer,
    config,
    ...(chatTemplate !== undefined && { chatTemplate }),
    namedChatTemplates,
    ...(files.generationConfig !== undefined && {
      generationConfig: parseObject(files.generationConfig, TOKENIZER_FILE_NAMES.generationConfig),
    }),
  };
}

/** A special token as `tokenizer_config.json` writes it: a string or an AddedToken object. */
export function specialTokenContent(value: JsonValue | undefined): string | null {
  if (typeof value === "string") return value;
  if (value !== null && typeof value === "object" && !Array.isArray(value) && typeof value["content"] === "string") {
    return value["content"];
  }
  return null;
}
