/** Which encoder runs: the exact byte-level BPE fast path, or the general tokenizers.js library. */
export type EncoderImplementation = "byte-level-bpe" | "tokenizers-js";

/** `auto` takes the fast path whenever it reproduces the tokenizer exactly, tokenizers.js otherwise. */
export type EncoderPreference = "auto" | EncoderImplementation;

/** Text → token ids, as the Rust `tokenizers` crate's `encode(text, add_special_tokens)`. */
export interface TokenEncoder {
  readonly implementation: EncoderImplementation;
  /** One past the largest token id (vocabulary and added tokens). */
  readonly vocabSize: number;
  encode(text: string, addSpecialTokens: boolean): Uint32Array;
}
