import { parseChatRequest } from "./chat-request.js";
import { ChatTemplates } from "./chat-template.js";
import { parseCompletionsRequest } from "./completions-request.js";
import { createEncoder } from "./encoder.js";
import type { EncoderImplementation, EncoderPreference, TokenEncoder } from "./types.js";
import { InvalidRequest } from "./errors.js";
import { parseModelFiles, specialTokenContent, type JsonObject, type TokenizerFiles } from "./model-files.js";

/** Which OpenAI endpoint the body was sent to. */
export type RequestKind = "chat" | "completions";

export interface TokenizeOptions {
  /** Also return the prompt text that was tokenized (the rendered chat template for chat requests). */
  readonly returnPrompt?: boolean;
}

export interface TokenizeResult {
  /** The prompt token ids, exactly as the engine computes them. */
  readonly tokenIds: Uint32Array;
  /** Whether these ids stand for the whole request, so they may be injected into the body (`nvext.token_data`). */
  readonly injectable: boolean;
  /** The text that was tokenized, when asked for and when the prompt was text. */
  readonly prompt?: string;
}

export interface EncodeOptions {
  /** Let the tokenizer's post-processor add its special tokens (e.g. a BOS). Default false. */
  readonly addSpecialTokens?: boolean;
}

/** What was loaded. */
export interface TokenizerInfo {
  readonly implementation: EncoderImplementation;
  /** Why the byte-level BPE fast path was not used, when it was not. */
  readonly fallbackReason?: string;
  /** One past the largest token id (vocabulary and added tokens). */
  readonly vocabSize: number;
  readonly hasChatTemplate: boolean;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  /** `generation_config.json`, when the model has one. */
  readonly generationConfig?: JsonObject;
}

function keepLast(ids: Uint32Array, count: number | undefined): Uint32Array {
  return count === undefined || ids.length <= count ? ids : ids.slice(ids.length - count);
}

/**
 * One model's tokenizer and chat templates, synchronous. This is what runs inside pool workers (and
 * on the caller's thread for the synchronous API); it does no I/O.
 */
export class ModelTokenizer {
  readonly info: TokenizerInfo;
  private readonly encoder: TokenEncoder;
  private readonly templates: ChatTemplates;

  constructor(files: TokenizerFiles, encoder: EncoderPreference = "auto") {
    const parsed = parseModelFiles(files);
    const choice = createEncoder(parsed.tokenizer, parsed.config, encoder);
    this.encoder = choice.encoder;
    this.templates = new ChatTemplates(parsed);
    this.info = {
      implementation: choice.encoder.implementation,
      ...(choice.fallbackReason !== undefined && { fallbackReason: choice.fallbackReason }),
      vocabSize: choice.encoder.vocabSize,
      hasChatTemplate: this.templates.available,
      bosToken: specialTokenContent(parsed.config["bos_token"]),
      eosToken: specialTokenContent(parsed.config["eos_token"]),
      ...(parsed.generationConfig !== undefined && { generationConfig: parsed.generationConfig }),
    };
  }

  encode(text: string, options: EncodeOptions = {}): Uint32Array {
    return this.encoder.encode(text, options.addSpecialTokens ?? false);
  }

  /** The prompt text the chat template renders for a chat completions body. */
  renderChat(body: unknown): string {
    return this.templates.render(parseChatRequest(body, this.templates.contentFormat));
  }

  tokenizeRequest(kind: RequestKind, body: unknown, options: TokenizeOptions = {}): TokenizeResult {
    if (kind === "chat") {
      const request = parseChatRequest(body, this.templates.contentFormat);
      const prompt = this.templates.render(request);
      const tokenIds = keepLast(this.encoder.encode(prompt, request.addSpecialTokens), request.truncatePromptTokens);
      return { tokenIds, injectable: true, ...(options.returnPrompt === true && { prompt }) };
    }
    if (kind !== "completions") throw new InvalidRequest("kind", `unknown request kind ${JSON.stringify(kind)}`);
    const prompt = parseCompletionsRequest(body, this.info.vocabSize);
    if (prompt.kind === "token-ids") {
      return { tokenIds: keepLast(prompt.ids, prompt.truncatePromptTokens), injectable: prompt.injectable };
    }
    const tokenIds = keepLast(this.encoder.encode(prompt.text, prompt.addSpecialTokens), prompt.truncatePromptTokens);
    return { tokenIds, injectable: prompt.injectable, ...(options.returnPrompt === true && { prompt: prompt.text }) };
  }
}
