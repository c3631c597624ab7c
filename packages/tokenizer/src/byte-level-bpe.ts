import { AddedTokenSplitter, type AddedTokenSpec } from "./added-tokens.js";
import { BYTE_TO_CODE_POINT, byteLevelTokenBytes } from "./byte-level.js";
import { MergeTable, mergeSymbols } from "./bpe.js";
import type { TokenEncoder } from "./encoder.js";
import type { JsonObject, JsonValue } from "./model-files.js";
import { GPT2_SPLIT_PATTERN, translateSplitPattern } from "./pretokenizer-pattern.js";

/**
 * A fast encoder for byte-level BPE tokenizers (GPT-2 family: Qwen, Llama 3, DeepSeek, Mistral Nemo,
 * ...), producing the same ids as the Rust `tokenizers` crate. `compileByteLevelBpe` accepts only
 * configurations whose every step it reproduces exactly; for anything else it says why not.
 */

type UnicodeForm = "NFC" | "NFD" | "NFKC" | "NFKD";

interface ByteLevelBpePlan {
  readonly normalizers: readonly UnicodeForm[];
  readonly splitPatterns: readonly RegExp[];
  readonly vocab: ReadonlyMap<string, number>;
  readonly merges: ReadonlyArray<readonly [string, string]>;
  readonly ignoreMerges: boolean;
  readonly addedTokens: readonly AddedTokenSpec[];
  readonly prefixIds: readonly number[];
  readonly suffixIds: readonly number[];
}

const isObject = (value: JsonValue | undefined): value is JsonObject =>
  value !== null && typeof value === "object" && !Array.isArray(value);

class Unsupported extends Error {}

function expect(condition: boolean, what: string): asserts condition {
  if (!condition) throw new Unsupported(what);
}

function planNormalizer(normalizer: JsonValue | undefined): UnicodeForm[] {
  if (normalizer === undefined || normalizer === null) return [];
  expect(isObject(normalizer), "normalizer is not an object");
  const type = normalizer["type"];
  if (type === "Sequence") {
    const steps = normalizer["normalizers"];
    expect(Array.isArray(steps), "normalizer Sequence without normalizers");
    return steps.flatMap(planNormalizer);
  }
  expect(type === "NFC" || type === "NFD" || type === "NFKC" || type === "NFKD", `normalizer ${String(type)}`);
  return [type];
}

function planSplit(step: JsonObject): RegExp {
  expect(step["behavior"] === "Isolated" && step["invert"] !== true, "Split behaviour other than Isolated");
  const pattern = step["pattern"];
  expect(isObject(pattern), "Split without pattern");
  if (typeof pattern["String"] === "string") {
    return new RegExp(pattern["String"].replace(/[\\^$.*+?()[\]{}|/-]/g, "\\$&"), "gu");
  }
  expect(typeof pattern["Regex"] === "string", "Split pattern is neither String nor Regex");
  const translated = translateSplitPattern(pattern["Regex"]);
  expect(translated !== null, `Split pattern not translatable: ${pattern["Regex"]}`);
  return translated;
}

function planPreTokenizer(preTokenizer: JsonValue | undefined): RegExp[] {
  expect(isObject(preTokenizer), "no pre-tokenizer");
  const steps = preTokenizer["type"] === "Sequence" ? preTokenizer["pretokenizers"] : [preTokenizer];
  expect(Array.isArray(steps) && steps.length > 0, "empty pre-tokenizer Sequence");
  const patterns: RegExp[] = [];
  steps.forEach((step, index) => {
    expect(isObject(step), "pre-tokenizer step is not an object");
    if (step["type"] === "Split") {
      patterns.push(planSplit(step));
      return;
    }
    expect(step["type"] === "ByteLevel", `pre-tokenizer ${String(step["type"])}`);
    expect(index === steps.length - 1, "ByteLevel is not the last pre-tokenizer");
    expect(step["add_prefix_space"] !== true, "ByteLevel add_prefix_space");
    if (step["use_regex"] !== false) patterns.push(translateSplitPattern(GPT2_SPLIT_PATTERN)!);
  });
  const last = steps[steps.length - 1];
  expect(isObject(last) && last["type"] === "ByteLevel", "no ByteLevel pre-tokenizer");
  return patterns;
}

function planPostProcessor(processor: JsonValue | undefined): { prefixIds: number[]; suffixIds: number[] } {
  const plan = { prefixIds: [] as number[], suffixIds: [] as number[] };
  if (processor === undefined || processor === null) return plan;
  expect(isObject(processor), "post-processor is not an object");
  const steps = processor["type"] === "Sequence" ? processor["processors"] : [processor];
  expect(Array.isArray(steps), "post-processor Sequence without processors");
  for (const step of steps) {
    expect(isObject(step), "post-processor step is not an object");
    if (step["type"] === "ByteLevel") continue; // adjusts offsets only
    expect(step["type"] === "TemplateProcessing", `post-processor ${String(step["type"])}`);
    const single = step["single"];
    const specials = step["special_tokens"];
    expect(Array.isArray(single) && isObject(specials), "TemplateProcessing without single template");
    let seenSequence = false;
    for (const piece of single) {
      expect(isObject(piece), "TemplateProcessing piece");
      if (isObject(piece["Sequence"])) {
        expect(!seenSequence, "TemplateProcessing with two sequences");
        seenSequence = true;
        continue;
      }
      const special = piece["SpecialToken"];
      expect(isObject(special) && typeof special["id"] === "string", "TemplateProcessing piece");
      const entry = specials[special["id"]];
      expect(isObject(entry) && Array.isArray(entry["ids"]), `TemplateProcessing token ${special["id"]}`);
      const ids = entry["ids"].filter((id): id is number => typeof id === "number");
      (seenSequence ? plan.suffixIds : plan.prefixIds).push(...ids);
    }
  }
  return plan;
}

function planMerges(model: JsonObject): Array<readonly [string, string]> {
  const merges = model["merges"];
  expect(Array.isArray(merges), "BPE without merges");
  return merges.map((merge) => {
    if (typeof merge === "string") {
      const space = merge.indexOf(" ", 1);
      expect(space > 0, `merge "${merge}"`);
      return [merge.slice(0, space), merge.slice(space + 1)] as const;
    }
    expect(Array.isArray(merge) && merge.length === 2, "merge entry");
    const [left, right] = merge;
    expect(typeof left === "string" && typeof right === "string", "merge entry");
    return [left, right] as const;
  });
}

function planModel(model: JsonValue | undefined): Pick<ByteLevelBpePlan, "vocab" | "merges" | "ignoreMerges"> {
  expect(isObject(model) && model["type"] === "BPE", "model is not BPE");
  expect(model["dropout"] === null || model["dropout"] === undefined, "BPE dropout");
  expect(!model["continuing_subword_prefix"] && !model["end_of_word_suffix"], "BPE subword prefix/suffix");
  expect(model["byte_fallback"] !== true, "BPE byte_fallback");
  const vocab = model["vocab"];
  expect(isObject(vocab), "BPE without vocab");
  const ids = new Map<string, number>();
  for (const token in vocab) {
    const id = vocab[token];
    if (typeof id === "number") ids.set(token, id);
  }
  return { vocab: ids, merges: planMerges(model), ignoreMerges: model["ignore_merges"] === true };
}

function planAddedTokens(addedTokens: JsonValue | undefined): AddedTokenSpec[] {
  if (addedTokens === undefined) return [];
  expect(Array.isArray(addedTokens), "added_tokens is not a list");
  return addedTokens.map((token) => {
    expect(isObject(token) && typeof token["id"] === "number" && typeof token["content"] === "string", "added token");
    expect(!token["single_word"] && !token["lstrip"] && !token["rstrip"], `added token options on ${token["content"]}`);
    return { id: token["id"], content: token["content"], normalized: token["normalized"] === true };
  });
}

function plan(tokenizer: JsonObject): ByteLevelBpePlan {
  const truncationOrPadding = tokenizer["truncation"] ?? tokenizer["padding"];
  expect(truncationOrPadding === undefined || truncationOrPadding === null, "truncation or padding configured");
  return {
    normalizers: planNormalizer(tokenizer["normalizer"]),
    splitPatterns: planPreTokenizer(tokenizer["pre_tokenizer"]),
    ...planModel(tokenizer["model"]),
    addedTokens: planAddedTokens(tokenizer["added_tokens"]),
    ...planPostProcessor(tokenizer["post_processor"]),
  };
}

function applyNormalizers(forms: readonly UnicodeForm[], text: string): string {
  let result = text;
  for (const form of forms) result = result.normalize(form);
  return result;
}

/** Growable output of token ids. */
class IdBuffer {
  data: Uint32Array;
  length = 0;

  constructor(capacity: number) {
    this.data = new Uint32Array(Math.max(16, capacity));
  }

  private grow(needed: number): void {
    let capacity = this.data.length * 2;
    while (capacity < needed) capacity *= 2;
    const grown = new Uint32Array(capacity);
    grown.set(this.data.subarray(0, this.length));
    this.data = grown;
  }

  push(id: number): void {
    if (this.length === this.data.length) this.grow(this.length + 1);
    this.data[this.length++] = id;
  }

  pushAll(ids: ArrayLike<number>): void {
    if (this.length + ids.length > this.data.length) this.grow(this.length + ids.length);
    for (let i = 0; i < ids.length; i++) this.data[this.length++] = ids[i]!;
  }

  result(): Uint32Array {
    return this.data.slice(0, this.length);
  }
}

/** Pieces longer than this are not cached (they are rare and would bloat the cache). */
const CACHE_MAX_PIECE = 64;
const CACHE_MAX_ENTRIES = 100_000;

export class ByteLevelBpeEncoder implements TokenEncoder {
  readonly implementation = "byte-level-bpe";
  private readonly byteIds = new Int32Array(256);
  private readonly merges: MergeTable;
  /** Whole-word vocabulary by text, used when `ignore_merges` is set. */
  private readonly wholeWords: Map<string, number> | null;
  private readonly rawSplitter: AddedTokenSplitter;
  private readonly normalizedSplitter: AddedTokenSplitter | null;
  private readonly cache = new Map<string, Uint32Array>();
  private symbols = new Int32Array(1024);
  private readonly utf8 = new TextEncoder();

  constructor(private readonly plan: ByteLevelBpePlan) {
    for (let byte = 0; byte < 256; byte++) {
      const id = plan.vocab.get(String.fromCodePoint(BYTE_TO_CODE_POINT[byte]!));
      expect(id !== undefined, `byte ${byte} missing from the vocabulary`);
      this.byteIds[byte] = id;
    }
    this.merges = new MergeTable(plan.merges.length);
    plan.merges.forEach(([left, right], rank) => {
      const leftId = plan.vocab.get(left);
      const rightId = plan.vocab.get(right);
      const mergedId = plan.vocab.get(left + right);
      if (leftId !== undefined && rightId !== undefined && mergedId !== undefined) {
        this.merges.add(leftId, rightId, rank, mergedId);
      }
    });
    this.wholeWords = plan.ignoreMerges ? wholeWordVocabulary(plan.vocab) : null;
    this.rawSplitter = new AddedTokenSplitter(plan.addedTokens.filter((token) => !token.normalized));
    const normalizedTokens = plan.addedTokens
      .filter((token) => token.normalized)
      .map((token) => ({ ...token, content: applyNormalizers(plan.normalizers, token.content) }));
    this.normalizedSplitter = normalizedTokens.length > 0 ? new AddedTokenSplitter(normalizedTokens) : null;
  }

  encode(text: string, addSpecialTokens: boolean): Uint32Array {
    const out = new IdBuffer((text.length >> 2) + 8);
    if (addSpecialTokens) out.pushAll(this.plan.prefixIds);
    const pushId = (id: number) => out.push(id);
    const encodeText = (segment: string) => this.encodeNormalized(segment, out);
    this.rawSplitter.split(
      text,
      (segment) => {
        const normalized = applyNormalizers(this.plan.normalizers, segment);
        if (this.normalizedSplitter === null) encodeText(normalized);
        else this.normalizedSplitter.split(normalized, encodeText, pushId);
      },
      pushId,
    );
    if (addSpecialTokens) out.pushAll(this.plan.suffixIds);
    return out.result();
  }

  private encodeNormalized(text: string, out: IdBuffer): void {
    this.splitAt(0, text, out);
  }

  /** Applies split pattern `level` (isolating matches and the gaps between them) down to BPE pieces. */
  private splitAt(level: number, text: string, out: IdBuffer): void {
    const pattern = this.plan.splitPatterns[level];
    if (pattern === undefined) {
      this.encodePiece(text, out);
      return;
    }
    pattern.lastIndex = 0;
    let start = 0;
    for (let match = pattern.exec(text); match !== null; match = pattern.exec(text)) {
      const piece = match[0];
      if (piece.length === 0) {
        pattern.lastIndex++;
        continue;
      }
      if (match.index > start) this.splitAt(level + 1, text.slice(start, match.index), out);
      this.splitAt(level + 1, piece, out);
      start = match.index + piece.length;
    }
    if (start < text.length) this.splitAt(level + 1, start === 0 ? text : text.slice(start), out);
  }

  private encodePiece(piece: string, out: IdBuffer): void {
    const cached = this.cache.get(piece);
    if (cached !== undefined) {
      out.pushAll(cached);
      return;
    }
    const whole = this.wholeWords?.get(piece);
    const ids = whole !== undefined ? Uint32Array.of(whole) : this.mergePiece(piece);
    out.pushAll(ids);
    if (piece.length <= CACHE_MAX_PIECE) {
      if (this.cache.size >= CACHE_MAX_ENTRIES) this.cache.clear();
      this.cache.set(piece, ids);
    }
  }

  private mergePiece(piece: string): Uint32Array {
    const maxBytes = piece.length * 3;
    if (this.symbols.length < maxBytes) this.symbols = new Int32Array(maxBytes * 2);
    const symbols = this.symbols;
    let length = 0;
    let ascii = true;
    for (let i = 0; i < piece.length; i++) {
      const code = piece.charCodeAt(i);
      if (code >= 0x80) {
        ascii = false;
        break;
      }
      symbols[length++] = this.byteIds[code]!;
    }
    if (!ascii) {
      const bytes = this.utf8.encode(piece);
      length = bytes.length;
      for (let i = 0; i < length; i++) symbols[i] = this.byteIds[bytes[i]!]!;
    }
    const merged = mergeSymbols(this.merges, symbols, length);
    return Uint32Array.from(symbols.subarray(0, merged));
  }
}

/** Vocabulary entries whose bytes are valid UTF-8, keyed by the text they stand for. */
function wholeWordVocabulary(vocab: ReadonlyMap<string, number>): Map<string, number> {
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  const words = new Map<string, number>();
  for (const [token, id] of vocab) {
    const bytes = byteLevelTokenBytes(token);
    if (bytes === null) continue;
    try {
      words.set(decoder.decode(bytes), id);
    } catch {
      // not valid UTF-8 on its own: never a whole pre-tokenized piece
    }
  }
  return words;
}

/** The fast encoder for this `tokenizer.json`, or the reason it cannot reproduce it exactly. */
export function compileByteLevelBpe(tokenizer: JsonObject): ByteLevelBpeEncoder | { unsupported: string } {
  try {
    return new ByteLevelBpeEncoder(plan(tokenizer));
  } catch (error) {
    if (error instanceof Unsupported) return { unsupported: error.message };
    throw error;
  }
}
