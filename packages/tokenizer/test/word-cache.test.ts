import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { beforeAll, describe, expect, it } from "vitest";
import { ModelTokenizer, type TokenizerFileTexts } from "../src/index.js";
import { compileByteLevelBpe, type ByteLevelBpeEncoder } from "../src/byte-level-bpe.js";
import { WORD_CACHE_MAX_PIECE, WordCache } from "../src/word-cache.js";
import { Reference, fixtureFiles } from "./support/fixtures.js";

setFlagsFromString("--expose-gc");
const collectGarbage = runInNewContext("gc") as () => void;

const MIB = 1024 * 1024;

/** Deterministic lowercase words no tokenizer cache has seen: `count` of them, from `seed`. */
function neverSeenWords(count: number, seed: number): string[] {
  let state = seed;
  const random = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32;
  return Array.from({ length: count }, () =>
    Array.from({ length: 4 + Math.floor(random() * 8) }, () =>
      String.fromCharCode(97 + Math.floor(random() * 26)),
    ).join(""),
  );
}

function fastEncoder(files: TokenizerFileTexts): ByteLevelBpeEncoder {
  const encoder = compileByteLevelBpe(JSON.parse(files.tokenizer) as never);
  if ("unsupported" in encoder) throw new Error(encoder.unsupported);
  return encoder;
}

class Ids {
  readonly ids: number[] = [];
  push(id: number): void {
    this.ids.push(id);
  }
  pushRange(ids: Int32Array, start: number, end: number): void {
    for (let i = start; i < end; i++) this.ids.push(ids[i]!);
  }
}

describe("WordCache", () => {
  it("admits a piece on its second sighting and gives back its ids", () => {
    const cache = new WordCache();
    const out = new Ids();
    const ids = Int32Array.of(7, 11, 13, 17);
    cache.offer("hello", ids, 1, 3);
    expect(cache.emit("hello", out)).toBe(false);
    cache.offer("hello", ids, 1, 3);
    expect(cache.emit("hello", out)).toBe(true);
    cache.offer("one", ids, 3, 4);
    cache.offer("one", ids, 3, 4);
    expect(cache.emit("one", out)).toBe(true);
    expect(out.ids).toEqual([11, 13, 17]);
    expect(cache.size).toBe(2);
  });

  it("never caches pieces longer than the limit", () => {
    const cache = new WordCache();
    const long = "x".repeat(WORD_CACHE_MAX_PIECE + 1);
    for (let i = 0; i < 3; i++) cache.offer(long, Int32Array.of(1), 0, 1);
    expect(cache.emit(long, new Ids())).toBe(false);
  });
});

describe("the byte-level BPE word cache", () => {
  let files: TokenizerFileTexts;
  let reference: Reference;

  beforeAll(async () => {
    files = await fixtureFiles("qwen3");
    reference = Reference.fromFiles(files);
  });

  it("keeps words seen once out of the cache, and words seen twice in it, with the same ids", async () => {
    const encoder = fastEncoder(files);
    const text = neverSeenWords(3000, 1).join(" ");
    const first = encoder.encode(text, false);
    expect(encoder.cachedPieces).toBe(0);
    const second = encoder.encode(text, false);
    const pieces = new Set(text.split(" ").map((word, i) => (i === 0 ? word : ` ${word}`)));
    expect(encoder.cachedPieces).toBe(pieces.size);
    const third = encoder.encode(text, false);
    const expected = await reference.encode(text, false);
    for (const ids of [first, second, third]) expect(Array.from(ids)).toEqual(expected);
  });

  it("does not keep prompts alive through the words it caches", () => {
    const tokenizer = new ModelTokenizer(files, "byte-level-bpe");
    const base = "The router hashes every prompt into blocks and asks the index who holds them. ".repeat(6_600);
    const words = neverSeenWords(60, 2).map((word) => `${word}unseenidentifier${word}`); // longer than 12 characters
    tokenizer.encode(base);
    collectGarbage();
    const before = process.memoryUsage().heapUsed;
    for (const word of words) {
      const prompt = `${base} ${word} and again ${word}.`; // 528k characters; the new word twice, so it is cached
      expect(tokenizer.encode(prompt).length).toBeGreaterThan(90_000);
    }
    collectGarbage();
    const grown = process.memoryUsage().heapUsed - before;
    expect(grown / MIB).toBeLessThan(10);
  });
});
