import { ModelTokenizer, readTokenizerSource, type EmbeddedModel } from "@dynamo/tokenizer";
import type { Tokenizer as NativeTokenizer } from "@anush008/tokenizers";
import { round, type Progress } from "./framework.js";

/**
 * Text whose words no cache has seen: random lowercase words (some capitalised, some followed by a
 * comma), tokenized on one thread by a freshly loaded fast path and a freshly loaded Rust crate. Every
 * word is new, so word caches can only cost: this is the fast path's worst case, and what users meet
 * with identifiers, names, hashes and text in unfamiliar words.
 */

const MODELS: readonly EmbeddedModel[] = ["qwen3", "llama3"];
const PROMPTS = 12;
const PROMPT_CHARS = 32_000;
const TRIALS = 3;

export interface NeverSeenResult {
  readonly model: EmbeddedModel;
  readonly fastTokensPerSec: number;
  readonly nativeTokensPerSec: number;
  /** Fast path ÷ Rust crate, tokens per second. */
  readonly ratio: number;
  readonly identical: boolean;
}

function randomWords(chars: number, seed: number): string {
  let state = seed;
  const random = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const words: string[] = [];
  let length = 0;
  while (length < chars) {
    let word = "";
    for (let i = 2 + Math.floor(random() * 10); i > 0; i--) word += String.fromCharCode(97 + Math.floor(random() * 26));
    if (random() < 0.15) word = word[0]!.toUpperCase() + word.slice(1);
    if (random() < 0.08) word += ",";
    words.push(word);
    length += word.length + 1;
  }
  return words.join(" ");
}

/** Tokens per second of one pass over `texts`, one at a time; the ids of each text are kept. */
async function pass(texts: readonly string[], encode: (text: string) => Promise<ArrayLike<number>>) {
  const ids: ArrayLike<number>[] = [];
  let tokens = 0;
  const started = performance.now();
  for (const text of texts) {
    const result = await encode(text);
    tokens += result.length;
    ids.push(result);
  }
  return { tokensPerSec: (tokens / (performance.now() - started)) * 1000, ids };
}

const same = (a: ArrayLike<number>, b: ArrayLike<number>) =>
  a.length === b.length && Array.from(a).every((id, i) => id === b[i]);

/** Best of TRIALS for each side; every trial loads both tokenizers anew and draws other words. */
export async function measureNeverSeen(native: typeof NativeTokenizer, progress: Progress): Promise<NeverSeenResult[]> {
  const results: NeverSeenResult[] = [];
  for (const model of MODELS) {
    const files = await readTokenizerSource({ embedded: model });
    let fastBest = 0;
    let nativeBest = 0;
    let identical = true;
    for (let trial = 0; trial < TRIALS; trial++) {
      progress.update(`never-seen words, ${model}`, trial, TRIALS);
      const texts = Array.from({ length: PROMPTS }, (_, i) => randomWords(PROMPT_CHARS, 9_000 + trial * 100 + i));
      const fast = new ModelTokenizer(files, "byte-level-bpe");
      const rust = native.fromString(files.tokenizer);
      const ours = await pass(texts, async (text) => fast.encode(text));
      const theirs = await pass(texts, async (text) =>
        (await rust.encode(text, null, { addSpecialTokens: false })).getIds(),
      );
      fastBest = Math.max(fastBest, ours.tokensPerSec);
      nativeBest = Math.max(nativeBest, theirs.tokensPerSec);
      identical &&= ours.ids.every((ids, i) => same(ids, theirs.ids[i]!));
    }
    progress.update(`never-seen words, ${model}`, TRIALS, TRIALS);
    results.push({
      model,
      fastTokensPerSec: round(fastBest, 0),
      nativeTokensPerSec: round(nativeBest, 0),
      ratio: round(fastBest / nativeBest, 2),
      identical,
    });
  }
  return results;
}

export const NEVER_SEEN_DESCRIPTION =
  `Never-seen words: ${PROMPTS} prompts of ${PROMPT_CHARS.toLocaleString("en-US")} characters of random lowercase ` +
  `words (2–11 letters, some capitalised, some followed by a comma) per model, one pass on one thread by a tokenizer ` +
  `loaded just before (load time excluded), best of ${TRIALS} trials with other words each; every word is new, so ` +
  `word caches can only cost.`;
