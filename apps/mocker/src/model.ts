import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  REQUIRED_MODEL_CARD_FILES,
  OPTIONAL_MODEL_CARD_FILES,
  type ModelCard,
  type ModelCardFileSource,
} from "@dynamo/discovery";
import { embeddedModelDirectory, type TokenizerSource } from "@dynamo/tokenizer";

/**
 * The tokenizer of `--model-path`: a directory holding `tokenizer.json` is read as it is; a model name
 * takes the tokenizer shipped with `@dynamo/tokenizer` for its family (`llama` names Llama 3, every
 * other name Qwen3).
 */
export function tokenizerSourceFor(modelPath: string): TokenizerSource {
  if (existsSync(join(modelPath, "tokenizer.json")) && statSync(modelPath).isDirectory())
    return { directory: modelPath };
  return /llama/i.test(modelPath) ? { embedded: "llama3" } : { embedded: "qwen3" };
}

/** The model card discovery publishes: the tokenizer files of the source, as local paths. */
export function modelCardFor(source: TokenizerSource): ModelCard | undefined {
  if ("files" in source) return undefined;
  const directory = "directory" in source ? source.directory : embeddedModelDirectory(source.embedded);
  const files: Record<string, ModelCardFileSource> = {};
  for (const name of [...REQUIRED_MODEL_CARD_FILES, ...OPTIONAL_MODEL_CARD_FILES]) {
    const path = join(directory, name);
    if (existsSync(path)) files[name] = { kind: "path", path };
  }
  return files["tokenizer.json"] === undefined ? undefined : { files };
}
