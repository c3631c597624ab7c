import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import type { Tokenizer as NativeTokenizer } from "@anush008/tokenizers";
import { readTokenizerSource, type TokenizerFileTexts } from "../../src/index.js";
import { BYTE_TO_CODE_POINT } from "../../src/byte-level.js";

export type Fixture = "qwen3" | "llama3" | "llama3-bos" | "llama3.1" | "tiny";

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

/** Llama 3.1 keeps the Llama 3 vocabulary and names three of its reserved special tokens. */
const LLAMA31_TOKEN_NAMES: Readonly<Record<number, string>> = {
  128004: "<|finetune_right_pad_id|>",
  128008: "<|eom_id|>",
  128010: "<|python_tag|>",
};

/**
 * Llama 3.1 Instruct: the Llama 3 tokenizer with the BOS post-processor and the Llama 3.1 token
 * names, `<|eot_id|>` as EOS, and a chat template written from the documented Llama 3.1 prompt
 * format (test/support/llama31-chat-template.jinja) handed over in memory.
 */
async function llama31Files(): Promise<TokenizerFileTexts> {
  const base = await fixtureFiles("llama3-bos");
  const tokenizer = JSON.parse(base.tokenizer) as { added_tokens: { id: number; content: string }[] };
  for (const token of tokenizer.added_tokens) token.content = LLAMA31_TOKEN_NAMES[token.id] ?? token.content;
  const { chat_template: _, ...config } = JSON.parse(base.tokenizerConfig!) as Record<string, unknown>;
  const decoder = config["added_tokens_decoder"] as Record<string, { content: string }> | undefined;
  for (const [id, name] of Object.entries(LLAMA31_TOKEN_NAMES))
    if (decoder?.[id] !== undefined) decoder[id].content = name;
  return {
    tokenizer: JSON.stringify(tokenizer),
    tokenizerConfig: JSON.stringify({ ...config, eos_token: "<|eot_id|>" }),
    chatTemplate: await readFile(new URL("llama31-chat-template.jinja", import.meta.url), "utf8"),
  };
}

const TINY_MERGES = [
  "h e",
  "l l",
  "he ll",
  "hell o",
  "Ġ w",
  "o r",
  "Ġw or",
  "Ġwor l",
  "Ġworl d",
  "t h",
  "Ġ th",
  "Ġth e",
  "Ġ Ġ",
];

/**
 * A GPT-2 style tokenizer small enough to load instantly: the 256 byte tokens, a few merges (old
 * `"a b"` form), a ByteLevel pre-tokenizer that applies the GPT-2 regex itself, two added tokens.
 */
function tinyTokenizer(): TokenizerFileTexts {
  const vocab: Record<string, number> = {};
  BYTE_TO_CODE_POINT.forEach((codePoint, byte) => (vocab[String.fromCharCode(codePoint)] = byte));
  TINY_MERGES.forEach((merge, i) => (vocab[merge.replace(" ", "")] = 256 + i));
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
  const added = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  const tokenizer = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [added(300, "<|end|>"), added(301, "<|user|>")],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: byteLevel,
    decoder: byteLevel,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: TINY_MERGES,
    },
  };
  return {
    tokenizer: JSON.stringify(tokenizer),
    tokenizerConfig: JSON.stringify({ eos_token: "<|end|>", bos_token: null }),
  };
}

export async function fixtureFiles(fixture: Fixture): Promise<TokenizerFileTexts> {
  if (fixture === "tiny") return tinyTokenizer();
  if (fixture === "llama3.1") return llama31Files();
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
