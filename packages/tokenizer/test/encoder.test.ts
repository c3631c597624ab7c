import { beforeAll, describe, expect, it } from "vitest";
import { ModelTokenizer, TokenizerLoadError, type TokenizerFileTexts } from "../src/index.js";
import { translateSplitPattern } from "../src/pretokenizer-pattern.js";
import { parityCorpus } from "./support/corpus.js";
import { Reference, fixtureFiles } from "./support/fixtures.js";

describe("translateSplitPattern", () => {
  const pieces = (pattern: string, text: string) => text.match(translateSplitPattern(pattern)!);

  it("translates the Qwen3, Llama 3 and GPT-2 split patterns", async () => {
    for (const fixture of ["qwen3", "llama3"] as const) {
      const tokenizer = JSON.parse((await fixtureFiles(fixture)).tokenizer) as {
        pre_tokenizer: { pretokenizers: Array<{ pattern?: { Regex: string } }> };
      };
      expect(translateSplitPattern(tokenizer.pre_tokenizer.pretokenizers[0]!.pattern!.Regex)).toBeInstanceOf(RegExp);
    }
    expect(
      pieces("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", "I'm  here!"),
    ).toEqual(["I", "'m", " ", " here", "!"]);
  });

  it("gives \\s Oniguruma's meaning: U+0085 is white space, U+FEFF is not", () => {
    expect(pieces("\\s+|\\S+", "a\u0085\u00a0b\ufeffc")).toEqual(["a", "\u0085\u00a0", "b\ufeffc"]);
    expect(pieces("[^\\s]+", "x\u3000y")).toEqual(["x", "y"]);
  });

  it("expands case-insensitive groups with every case variant", () => {
    expect(pieces("(?i:'s|'ll)", "'s 'S 'ſ 'LL 'lL 'x")).toEqual(["'s", "'S", "'ſ", "'LL", "'lL"]);
  });

  it("translates escapes", () => {
    expect(pieces("\\x{1F600}+|\\u00e9|\\x41|\\'", "😀😀éA'")).toEqual(["😀😀", "é", "A", "'"]);
    expect(pieces("a\\-b|[\\-x]+", "a-b-x")).toEqual(["a-b", "-x"]);
  });

  it.each([
    "\\G",
    "(?>a)",
    "a++",
    "a?+",
    "\\w+",
    "\\d",
    ".",
    "^a",
    "[[:alpha:]]",
    "[a&&b]",
    "(?<name>a)",
    "\\p{Han}",
    "(?i)a",
    "[\\S]",
  ])("refuses %s", (pattern) => {
    expect(translateSplitPattern(pattern)).toBeNull();
  });
});

describe("encoder choice", () => {
  let qwen: TokenizerFileTexts;

  beforeAll(async () => {
    qwen = await fixtureFiles("qwen3");
  });

  const withTokenizer = (change: (json: Record<string, unknown>) => void): TokenizerFileTexts => {
    const json = JSON.parse(qwen.tokenizer) as Record<string, unknown>;
    change(json);
    return { ...qwen, tokenizer: JSON.stringify(json) };
  };

  it("falls back to tokenizers.js, still exact, when the fast path cannot reproduce a step", async () => {
    const files = withTokenizer((json) => {
      const preTokenizer = json["pre_tokenizer"] as { pretokenizers: unknown[] };
      preTokenizer.pretokenizers.splice(1, 0, { type: "Digits", individual_digits: true });
    });
    const tokenizer = new ModelTokenizer(files);
    expect(tokenizer.info.implementation).toBe("tokenizers-js");
    expect(tokenizer.info.fallbackReason).toBe("pre-tokenizer Digits");
    const reference = Reference.fromFiles(files);
    for (const { text } of parityCorpus()) {
      expect(Array.from(tokenizer.encode(text))).toEqual(await reference.encode(text, false));
    }
  });

  it("refuses to load when the fast path is demanded but impossible", () => {
    const files = withTokenizer((json) => {
      (json["model"] as Record<string, unknown>)["byte_fallback"] = true;
    });
    expect(() => new ModelTokenizer(files, "byte-level-bpe")).toThrow(TokenizerLoadError);
  });

  it("rejects files that are not a tokenizer", () => {
    expect(() => new ModelTokenizer({ tokenizer: "{not json" })).toThrow(TokenizerLoadError);
    expect(() => new ModelTokenizer({ tokenizer: "[]" })).toThrow(/tokenizer.json: expected a JSON object/);
    expect(() => new ModelTokenizer({ tokenizer: "{}" })).toThrow(/missing "model"/);
    expect(() => new ModelTokenizer({ ...qwen, tokenizerConfig: "nope" })).toThrow(
      /tokenizer_config.json: not valid JSON/,
    );
  });

  it("keeps the last tokens when truncate_prompt_tokens is set", () => {
    const tokenizer = new ModelTokenizer(qwen);
    const full = tokenizer.tokenizeRequest("completions", { prompt: "one two three four five" }).tokenIds;
    const last = tokenizer.tokenizeRequest("completions", {
      prompt: "one two three four five",
      truncate_prompt_tokens: 2,
    }).tokenIds;
    expect(Array.from(last)).toEqual(Array.from(full.subarray(full.length - 2)));
    const ids = tokenizer.tokenizeRequest("completions", { prompt: [1, 2, 3], truncate_prompt_tokens: 5 }).tokenIds;
    expect(Array.from(ids)).toEqual([1, 2, 3]);
  });
});
