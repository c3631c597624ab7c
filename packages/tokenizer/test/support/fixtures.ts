import { createRequire } from "node:module";
import type { Tokenizer as NativeTokenizer } from "@anush008/tokenizers";
import { readTokenizerSource, type TokenizerFileTexts } from "../../src/index.js";

export type Fixture = "qwen3" | "llama3" | "llama3-bos";

/**
 * Meta's Llama 3 Instruct `tokenizer.json` prepends `<|begin_of_text|>` in its post-processor (the
 * packaged copy leaves it out): the variant that shows special tokens are not added twice.
 */
const LLAMA3_BOS_POST_PROCESSOR = {
  type: "Sequence",
  processors: [
    { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
    {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<|begin_of_text|>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: "<|begin_of_text|>", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: "<|begin_of_text|>", type_id: 1 } },
        { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: {
        "<|begin_of_text|>": { id: "<|begin_of_text|>", ids: [128000], tokens: ["<|begin_of_text|>"] },
      },
    },
  ],
};

export async function fixtureFiles(fixture: Fixture): Promise<TokenizerFileTexts> {
  if (fixture !== "llama3-bos") return readTokenizerSource({ embedded: fixture });
  const files = await readTokenizerSource({ embedded: "llama3" });
  const tokenizer = JSON.parse(files.tokenizer) as Record<string, unknown>;
  return { ...files, tokenizer: JSON.stringify({ ...tokenizer, post_processor: LLAMA3_BOS_POST_PROCESSOR }) };
}

const { Tokenizer } = createRequire(import.meta.url)("@anush008/tokenizers") as typeof import("@anush008/tokenizers");

/** The Rust `tokenizers` crate through its Node binding: the reference every id is compared with. */
export class Reference {
  private constructor(private readonly tokenizer: NativeTokenizer) {}

  static fromFiles(files: TokenizerFileTexts): Reference {
    return new Reference(Tokenizer.fromString(files.tokenizer));
  }

  async encode(text: string, addSpecialTokens: boolean): Promise<number[]> {
    return (await this.tokenizer.encode(text, null, { addSpecialTokens })).getIds();
  }
}
