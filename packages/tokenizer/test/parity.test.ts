import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { ModelTokenizer, type EncoderPreference } from "../src/index.js";
import { parityCorpus } from "./support/corpus.js";
import { Reference, fixtureFiles, type Fixture } from "./support/fixtures.js";

const corpus = parityCorpus();

/** First differing position, for a readable failure. */
function firstDifference(actual: ArrayLike<number>, expected: ArrayLike<number>): string | null {
  const length = Math.max(actual.length, expected.length);
  for (let i = 0; i < length; i++) {
    if (actual[i] !== expected[i]) {
      return `at ${i}: got ${Array.from(actual)
        .slice(i, i + 4)
        .join(",")} expected ${Array.from(expected)
        .slice(i, i + 4)
        .join(",")}`;
    }
  }
  return null;
}

/** The fallback library is checked without post-processing only: special tokens are the fast path's own code. */
const setups: Array<[Fixture, EncoderPreference, boolean[]]> = [
  ["qwen3", "byte-level-bpe", [false, true]],
  ["llama3", "byte-level-bpe", [false, true]],
  ["llama3-bos", "byte-level-bpe", [false, true]],
  ["tiny", "byte-level-bpe", [false]],
  ["qwen3", "tokenizers-js", [false]],
  ["llama3", "tokenizers-js", [false]],
];

describe.each(setups)("%s with %s matches the Rust tokenizers crate", (fixture, encoder, specialTokenModes) => {
  let tokenizer: ModelTokenizer;
  let reference: Reference;

  beforeAll(async () => {
    const files = await fixtureFiles(fixture);
    tokenizer = new ModelTokenizer(files, encoder);
    reference = Reference.fromFiles(files);
  });

  it("uses the requested encoder", () => {
    expect(tokenizer.info.implementation).toBe(encoder);
  });

  it.each(specialTokenModes)("on every corpus case (addSpecialTokens %s)", async (addSpecialTokens) => {
    const mismatches: string[] = [];
    for (const { name, text } of corpus) {
      const expected = await reference.encode(text, addSpecialTokens);
      const difference = firstDifference(tokenizer.encode(text, { addSpecialTokens }), expected);
      if (difference !== null) mismatches.push(`${name}: ${difference}`);
    }
    expect(mismatches).toEqual([]);
  });
});

describe.each(["qwen3", "llama3"] as const)("%s fast path on random text", (fixture) => {
  let tokenizer: ModelTokenizer;
  let reference: Reference;

  beforeAll(async () => {
    const files = await fixtureFiles(fixture);
    tokenizer = new ModelTokenizer(files, "byte-level-bpe");
    reference = Reference.fromFiles(files);
  });

  const pieces = fc.oneof(
    fc.string({ unit: "grapheme", maxLength: 40 }),
    fc.string({ unit: "binary", maxLength: 40 }),
    fc.stringMatching(/^[ \t\n\r]{1,12}$/),
    fc.stringMatching(/^[a-zA-Z]{40,300}$/),
    fc.constantFrom("<|im_start|>", "<|eot_id|>", "<think>", "'s", "'LL", "\u0085", "\u00a0", "e\u0301", "１２３"),
  );

  it("matches on generated strings", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(pieces, { maxLength: 12 }), async (parts) => {
        const text = parts.join("");
        expect(Array.from(tokenizer.encode(text))).toEqual(await reference.encode(text, false));
      }),
      { numRuns: 200, seed: 42 },
    );
  });
});
