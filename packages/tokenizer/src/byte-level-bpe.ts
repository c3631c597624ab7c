import { AddedTokenSplitter, type AddedTokenSpec } from "./added-tokens.js";
import { BYTE_TO_CODE_POINT, byteLevelText } from "./byte-level.js";
import { MergeTable, mergeSymbols } from "./bpe.js";
import { WordCache, type IdSink } from "./word-cache.js";
import type { TokenEncoder } from "./types.js";
import type { JsonObject, JsonValue } from "./model-files.js";
import { GPT2_SPLIT_PATTERN, translateSplitPattern } from "./pretokenizer-pattern.js";
import { normalizeAsCrate, nodeNormalizationIsRecentEnough, type UnicodeForm } from "./unicode.js";

/**
 * A fast encoder for byte-level BPE tokenizers (GPT-2 family: Qwen, Llama 3, DeepSeek, Mistral Nemo,
 * ...), producing the same ids as the Rust `tokenizers` crate. `compileByteLevelBpe` accepts only
 * configurations whose every step it reproduces exactly; for anything else it says why not.
 */

interface ByteLevelBpePlan {
  readonly normalizers: readonly UnicodeForm[];
  readonly splitPatterns: readonly RegExp[];
  readonly vocab: ReadonlyMap<string, number>;
  /** One past the largest model id. */
  readonly modelVocabSize: number;
  /** `model.merges` entries, checked while the merge table is built. */
  readonly merges: readonly JsonValue[];
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
  expect(nodeNormalizationIsRecentEnough(), `Node's Unicode ${process.versions.unicode} is older than the crate's`);
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

/** A merge as `"left right"` (older files) or `["left", "right"]`. */
function mergePair(merge: JsonValue): readonly [string, string] {
  if (typeof merge === "string") {
    const space = merge.indexOf(" ", 1);
    expect(space > 0, `merge "${merge}"`);
    return [merge.slice(0, space), merge.slice(space + 1)];
  }
  expect(Array.isArray(merge) && merge.length === 2, "merge entry");
  const [left, right] = merge;
  expect(typeof left === "string" && typeof right === "string", "merge entry");
  return [left, right];
}

function planModel(
  model: JsonValue | undefined,
): Pick<ByteLevelBpePlan, "vocab" | "modelVocabSize" | "merges" | "ignoreMerges"> {
  expect(isObject(model) && model["type"] === "BPE", "model is not BPE");
  expect(model["dropout"] === null || model["dropout"] === undefined, "BPE dropout");
  expect(!model["continuing_subword_prefix"] && !model["end_of_word_suffix"], "BPE subword prefix/suffix");
  expect(model["byte_fallback"] !== true, "BPE byte_fallback");
  const vocab = model["vocab"];
  expect(isObject(vocab), "BPE without vocab");
  const merges = model["merges"];
  expect(Array.isArray(merges), "BPE without merges");
  const ids = new Map<string, number>();
  let maxId = -1;
  for (const token in vocab) {
    const id = vocab[token];
    if (typeof id !== "number") continue;
    ids.set(token, id);
    if (id > maxId) maxId = id;
  }
  return { vocab: ids, modelVocabSize: maxId + 1, merges, ignoreMerges: model["ignore_merges"] === true };
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
  for (const form of forms) result = normalizeAsCrate(result, form);
  return result;
}

/** Vocabulary entries by the text they stand for (entries whose bytes are not UTF-8 text left out). */
function wholeTokenTexts(vocab: ReadonlyMap<string, number>): Map<string, number> {
  const texts = new Map<string, number>();
  for (const [token, id] of vocab) {
    const text = byteLevelText(token);
    if (text !== null) texts.set(text, id);
  }
  return texts;
}

// ES2024 string methods (Node 20 has them; the project's TypeScript library is ES2023).
const isWellFormed = (text: string): boolean => (text as unknown as { isWellFormed(): boolean }).isWellFormed();
const toWellFormed = (text: string): string => (text as unknown as { toWellFormed(): string }).toWellFormed();

/** Growable output of token ids. */
class IdBuffer implements IdSink {
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

  pushAll(ids: readonly number[]): void {
    for (const id of ids) this.push(id);
  }

  pushRange(ids: Int32Array, start: number, end: number): void {
    if (this.length + end - start > this.data.length) this.grow(this.length + end - start);
    for (let i = start; i < end; i++) this.data[this.length++] = ids[i]!;
  }

  result(): Uint32Array {
    return this.data.slice(0, this.length);
  }
}

export class ByteLevelBpeEncoder implements TokenEncoder {
  readonly implementation = "byte-level-bpe";
  readonly vocabSize: number;
  private readonly byteIds = new Int32Array(256);
  private readonly merges: MergeTable;
  private readonly normalizers: readonly UnicodeForm[];
  private readonly splitPatterns: readonly RegExp[];
  private readonly prefixIds: readonly number[];
  private readonly suffixIds: readonly number[];
  /** With `ignore_merges`, a piece that is itself a vocabulary entry is that token (no merging): text → id. */
  private readonly wholeTokens: ReadonlyMap<string, number> | null;
  private readonly rawSplitter: AddedTokenSplitter;
  private readonly normalizedSplitter: AddedTokenSplitter | null;
  private readonly cache = new WordCache();
  private bytes = new Uint8Array(1024);
  private symbols = new Int32Array(1024);
  private readonly utf8 = new TextEncoder();

  constructor(plan: ByteLevelBpePlan) {
    for (let byte = 0; byte < 256; byte++) {
      const id = plan.vocab.get(String.fromCharCode(BYTE_TO_CODE_POINT[byte]!));
      expect(id !== undefined, `byte ${byte} missing from the vocabulary`);
      this.byteIds[byte] = id;
    }
    this.merges = new MergeTable(plan.merges.length);
    for (let rank = 0; rank < plan.merges.length; rank++) {
      const [left, right] = mergePair(plan.merges[rank]!);
      const leftId = plan.vocab.get(left);
      const rightId = plan.vocab.get(right);
      const mergedId = plan.vocab.get(left + right);
      if (leftId !== undefined && rightId !== undefined && mergedId !== undefined) {
        this.merges.add(leftId, rightId, rank, mergedId);
      }
    }
    this.vocabSize = plan.addedTokens.reduce((size, token) => Math.max(size, token.id + 1), plan.modelVocabSize);
    this.normalizers = plan.normalizers;
    this.splitPatterns = plan.splitPatterns;
    this.prefixIds = plan.prefixIds;
    this.suffixIds = plan.suffixIds;
    this.wholeTokens = plan.ignoreMerges ? wholeTokenTexts(plan.vocab) : null;
    this.rawSplitter = new AddedTokenSplitter(plan.addedTokens.filter((token) => !token.normalized));
    const normalizedTokens = plan.addedTokens
      .filter((token) => token.normalized)
      .map((token) => ({ ...token, content: applyNormalizers(plan.normalizers, token.content) }));
    this.normalizedSplitter = normalizedTokens.length > 0 ? new AddedTokenSplitter(normalizedTokens) : null;
  }

  /** Pieces in the word cache. */
  get cachedPieces(): number {
    return this.cache.size;
  }

  encode(text: string, addSpecialTokens: boolean): Uint32Array {
    const out = new IdBuffer((text.length >> 2) + 8);
    if (addSpecialTokens) out.pushAll(this.prefixIds);
    const pushId = (id: number) => out.push(id);
    const encodeText = (segment: string) => this.splitAt(0, segment, out);
    this.rawSplitter.split(
      text,
      (segment) => {
        const normalized = applyNormalizers(this.normalizers, segment);
        if (this.normalizedSplitter === null) encodeText(normalized);
        else this.normalizedSplitter.split(normalized, encodeText, pushId);
      },
      pushId,
    );
    if (addSpecialTokens) out.pushAll(this.suffixIds);
    return out.result();
  }

  /** Applies split pattern `level` (isolating matches and the gaps between them) down to BPE pieces. */
  private splitAt(level: number, text: string, out: IdBuffer): void {
    const pattern = this.splitPatterns[level];
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
    if (this.cache.emit(piece, out)) return;
    const count = this.bpe(piece);
    out.pushRange(this.symbols, 0, count);
    this.cache.offer(piece, this.symbols, 0, count);
  }

  /** Splits one piece into tokens, left in `this.symbols`; returns their count. */
  private bpe(piece: string): number {
    if (this.wholeTokens !== null) {
      // A lone surrogate is encoded as U+FFFD, so it is looked up as one.
      const id = this.wholeTokens.get(isWellFormed(piece) ? piece : toWellFormed(piece));
      if (id !== undefined) {
        this.symbols[0] = id;
        return 1;
      }
    }
    const length = this.utf8Bytes(piece);
    const bytes = this.bytes;
    if (this.symbols.length < length) this.symbols = new Int32Array(length * 2);
    const symbols = this.symbols;
    for (let i = 0; i < length; i++) symbols[i] = this.byteIds[bytes[i]!]!;
    return mergeSymbols(this.merges, symbols, length);
  }

  /** Writes the piece's UTF-8 bytes to `this.bytes`; returns their count. */
  private utf8Bytes(piece: string): number {
    if (this.bytes.length < piece.length * 3) this.bytes = new Uint8Array(piece.length * 6);
    for (let i = 0; i < piece.length; i++) {
      const code = piece.charCodeAt(i);
      if (code >= 0x80) return this.utf8.encodeInto(piece, this.bytes).written;
      this.bytes[i] = code;
    }
    return piece.length;
  }
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
