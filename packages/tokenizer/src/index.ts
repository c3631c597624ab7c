export { TokenizerRegistry, Tokenizer, DEFAULT_MODEL, type TokenizerRegistryOptions } from "./registry.js";
export { TokenizerPool, type TokenizerPoolOptions } from "./pool.js";
export {
  ModelTokenizer,
  type EncodeOptions,
  type RequestKind,
  type TokenizeOptions,
  type TokenizeResult,
  type TokenizerInfo,
} from "./model-tokenizer.js";
export {
  EMBEDDED_MODELS,
  embeddedModelDirectory,
  readTokenizerDirectory,
  readTokenizerSource,
  type EmbeddedModel,
  type TokenizerSource,
} from "./sources.js";
export {
  TOKENIZER_FILE_NAMES,
  parseModelFiles,
  type JsonObject,
  type JsonValue,
  type ModelFiles,
  type TokenizerFileTexts,
  type TokenizerFiles,
} from "./model-files.js";
export { parseChatRequest, type ChatRequest, type ContentFormat } from "./chat-request.js";
export { parseCompletionsRequest, type CompletionsPrompt } from "./completions-request.js";
export { ChatTemplates } from "./chat-template.js";
export { createEncoder } from "./encoder.js";
export type { EncoderImplementation, EncoderPreference, TokenEncoder } from "./types.js";
export { InvalidRequest, TokenizerError, TokenizerLoadError, UnknownModel } from "./errors.js";
