import type { EncoderPreference } from "./types.js";
import { InvalidRequest, TokenizerError, TokenizerLoadError } from "./errors.js";
import type { TokenizerFileTexts } from "./model-files.js";
import { ModelTokenizer, type RequestKind, type TokenizeResult, type TokenizerInfo } from "./model-tokenizer.js";

/**
 * Messages between the pool and its workers, and the worker-side task handling. Model files travel as
 * UTF-8 in SharedArrayBuffers: every task names its model and carries those (shared, not copied)
 * buffers, so whichever worker runs it can load the model the first time it sees its key.
 */

export interface SharedFileTexts {
  readonly tokenizer: SharedArrayBuffer;
  readonly tokenizerConfig: SharedArrayBuffer | undefined;
  readonly chatTemplate: SharedArrayBuffer | undefined;
  readonly generationConfig: SharedArrayBuffer | undefined;
}

export interface WireModel {
  /** Unique per loaded source: a worker loads each key once. */
  readonly key: string;
  readonly files: SharedFileTexts;
  readonly encoder: EncoderPreference;
}

export type PoolTask =
  | { readonly op: "load"; readonly model: WireModel }
  | {
      readonly op: "tokenize";
      readonly model: WireModel;
      readonly kind: RequestKind;
      readonly body: unknown;
      readonly returnPrompt: boolean;
    }
  | { readonly op: "encode"; readonly model: WireModel; readonly text: string; readonly addSpecialTokens: boolean };

export type SerializedError =
  | { readonly name: "InvalidRequest"; readonly field: string; readonly reason: string }
  | { readonly name: "TokenizerLoadError" | "Error"; readonly message: string };

export type PoolReply =
  | { readonly ok: true; readonly value: TokenizeResult | Uint32Array | TokenizerInfo }
  | { readonly ok: false; readonly error: SerializedError };

export function shareFileTexts(files: TokenizerFileTexts): SharedFileTexts {
  const utf8 = new TextEncoder();
  const share = (text: string): SharedArrayBuffer => {
    const bytes = utf8.encode(text);
    const shared = new SharedArrayBuffer(bytes.length);
    new Uint8Array(shared).set(bytes);
    return shared;
  };
  const shareOptional = (text: string | undefined) => (text === undefined ? undefined : share(text));
  return {
    tokenizer: share(files.tokenizer),
    tokenizerConfig: shareOptional(files.tokenizerConfig),
    chatTemplate: shareOptional(files.chatTemplate),
    generationConfig: shareOptional(files.generationConfig),
  };
}

export function unshareFileTexts(files: SharedFileTexts): TokenizerFileTexts {
  const utf8 = new TextDecoder();
  // TextDecoder refuses views of shared memory: copy out first.
  const text = (shared: SharedArrayBuffer | undefined) =>
    shared === undefined ? undefined : utf8.decode(new Uint8Array(shared).slice());
  const tokenizerConfig = text(files.tokenizerConfig);
  const chatTemplate = text(files.chatTemplate);
  const generationConfig = text(files.generationConfig);
  return {
    tokenizer: text(files.tokenizer)!,
    ...(tokenizerConfig !== undefined && { tokenizerConfig }),
    ...(chatTemplate !== undefined && { chatTemplate }),
    ...(generationConfig !== undefined && { generationConfig }),
  };
}

export function serializeError(error: unknown): SerializedError {
  if (error instanceof InvalidRequest) return { name: "InvalidRequest", field: error.field, reason: error.reason };
  if (error instanceof TokenizerLoadError) return { name: "TokenizerLoadError", message: error.message };
  return { name: "Error", message: error instanceof Error ? error.message : String(error) };
}

export function deserializeError(error: SerializedError): Error {
  if (error.name === "InvalidRequest") return new InvalidRequest(error.field, error.reason);
  if (error.name === "TokenizerLoadError") return new TokenizerLoadError(error.message);
  return new TokenizerError(error.message);
}

/** The models a worker has loaded, least recently used first; at most `capacity` stay loaded. */
export class LoadedModels {
  private readonly models = new Map<string, ModelTokenizer>();

  constructor(
    private readonly capacity: number,
    private readonly load = (model: WireModel) => new ModelTokenizer(unshareFileTexts(model.files), model.encoder),
  ) {}

  get(model: WireModel): ModelTokenizer {
    let tokenizer = this.models.get(model.key);
    if (tokenizer !== undefined) {
      this.models.delete(model.key);
    } else {
      tokenizer = this.load(model);
      if (this.models.size >= this.capacity) this.models.delete(this.models.keys().next().value!);
    }
    this.models.set(model.key, tokenizer);
    return tokenizer;
  }

  run(task: PoolTask): PoolReply {
    try {
      const tokenizer = this.get(task.model);
      switch (task.op) {
        case "load":
          return { ok: true, value: tokenizer.info };
        case "tokenize":
          return {
            ok: true,
            value: tokenizer.tokenizeRequest(task.kind, task.body, { returnPrompt: task.returnPrompt }),
          };
        case "encode":
          return { ok: true, value: tokenizer.encode(task.text, { addSpecialTokens: task.addSpecialTokens }) };
      }
    } catch (error) {
      return { ok: false, error: serializeError(error) };
    }
  }
}
