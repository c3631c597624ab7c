import { Tokenizer as TokenizersJs } from "@huggingface/tokenizers";
import { compileByteLevelBpe } from "./byte-level-bpe.js";
import { TokenizerLoadError } from "./errors.js";
import type { JsonObject } from "./model-files.js";
import type { EncoderPreference, TokenEncoder } from "./types.js";

class TokenizersJsEncoder implements TokenEncoder {
  readonly implementation = "tokenizers-js";
  private readonly tokenizer: TokenizersJs;

  readonly vocabSize: number;

  constructor(tokenizerJson: JsonObject, config: JsonObject) {
    this.tokenizer = new TokenizersJs(tokenizerJson, config);
    let maxId = -1;
    for (const id of this.tokenizer.get_vocab(true).values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;
  }

  encode(text: string, addSpecialTokens: boolean): Uint32Array {
    return Uint32Array.from(this.tokenizer.encode(text, { add_special_tokens: addSpecialTokens }).ids);
  }
}

export interface EncoderChoice {
  readonly encoder: TokenEncoder;
  /** Why the fast path was not taken, when it was not. */
  readonly fallbackReason?: string;
}

export function createEncoder(
  tokenizerJson: JsonObject,
  config: JsonObject,
  preference: EncoderPreference,
): EncoderChoice {
  if (preference === "tokenizers-js") return { encoder: new TokenizersJsEncoder(tokenizerJson, config) };
  const fast = compileByteLevelBpe(tokenizerJson);
  if (!("unsupported" in fast)) return { encoder: fast };
  if (preference === "byte-level-bpe")
    throw new TokenizerLoadError(`byte-level BPE fast path unavailable: ${fast.unsupported}`);
  return { encoder: new TokenizersJsEncoder(tokenizerJson, config), fallbackReason: fast.unsupported };
}
