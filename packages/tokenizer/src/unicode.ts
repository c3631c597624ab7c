import {
  GENERAL_CATEGORY_RUNS,
  NORMALIZATION_UNICODE_VERSION,
  UNASSIGNED_IN_NORMALIZATION_VERSION_RUNS,
} from "./unicode-tables.js";

/**
 * Unicode as the Rust `tokenizers` crate sees it: general categories for its split regexes and
 * normalisation in its own Unicode versions (unicode-tables.ts), whatever version Node's ICU has.
 */

export type UnicodeForm = "NFC" | "NFD" | "NFKC" | "NFKD";

type Range = readonly [first: number, last: number];

let categoryRanges: Map<string, Range[]> | undefined;

/** Code point ranges of each two-letter general category, decoded once. */
function rangesByCategory(): Map<string, Range[]> {
  if (categoryRanges !== undefined) return categoryRanges;
  categoryRanges = new Map();
  let start = 0;
  for (const run of GENERAL_CATEGORY_RUNS.split(",")) {
    const category = run.slice(0, 2);
    const length = parseInt(run.slice(2), 36);
    let ranges = categoryRanges.get(category);
    if (ranges === undefined) categoryRanges.set(category, (ranges = []));
    ranges.push([start, start + length - 1]);
    start += length;
  }
  return categoryRanges;
}

/** Sorted, merged ranges of a one-letter (`L`) or two-letter (`Lu`) general category; empty if unknown. */
function categoryMembers(name: string): Range[] {
  const ranges = [...rangesByCategory()]
    .filter(([category]) => category === name || (name.length === 1 && category[0] === name))
    .flatMap(([, list]) => list)
    .sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const [first, last] of ranges) {
    const previous = merged[merged.length - 1];
    if (previous !== undefined && previous[1] + 1 === first) previous[1] = last;
    else merged.push([first, last]);
  }
  return merged;
}

function complement(ranges: readonly Range[]): Range[] {
  const result: Range[] = [];
  let next = 0;
  for (const [first, last] of ranges) {
    if (first > next) result.push([next, first - 1]);
    next = last + 1;
  }
  if (next <= 0x10ffff) result.push([next, 0x10ffff]);
  return result;
}

/**
 * A code point inside a `u`-mode character class: the character itself where it is safe, so the
 * pattern stays short (V8 stops optimising regular expressions whose source passes 20 KB, and spelled
 * out as escapes the categories of a split pattern come to twice that).
 */
function classAtom(cp: number): string {
  const literal = cp > 0x2f && !(cp >= 0x7f && cp <= 0x9f) && cp !== 0x2028 && cp !== 0x2029;
  const surrogate = cp >= 0xd800 && cp <= 0xdfff;
  if (literal && !surrogate && cp !== 0x5b && cp !== 0x5c && cp !== 0x5d && cp !== 0x5e)
    return String.fromCodePoint(cp);
  return `\\u{${cp.toString(16)}}`;
}

/** Ranges as the inside of a `u`-mode character class. */
function classBody(ranges: readonly Range[]): string {
  return ranges
    .map(([first, last]) => (first === last ? classAtom(first) : `${classAtom(first)}-${classAtom(last)}`))
    .join("");
}

/** The inside of a character class matching `\p{name}` (or `\P{name}` when negated); null if unknown. */
export function generalCategoryClass(name: string, negated: boolean): string | null {
  const members = categoryMembers(name);
  if (members.length === 0) return null;
  return classBody(negated ? complement(members) : members);
}

/** Runs of code points the normalisers' Unicode version had not assigned (inert there). */
let unassignedPattern: RegExp | undefined;

function unassignedInNormalizationVersion(): RegExp {
  if (unassignedPattern !== undefined) return unassignedPattern;
  const ranges: Range[] = [];
  let start = 0;
  UNASSIGNED_IN_NORMALIZATION_VERSION_RUNS.split(",").forEach((run, index) => {
    const length = parseInt(run, 36);
    if (index % 2 === 1) ranges.push([start, start + length - 1]);
    start += length;
  });
  return (unassignedPattern = new RegExp(`[${classBody(ranges)}]+`, "gu"));
}

/** Whether Node's normaliser knows at least the characters the crate's normalisers know. */
export function nodeNormalizationIsRecentEnough(): boolean {
  const version = process.versions.unicode;
  if (version === undefined) return false;
  const [major = 0, minor = 0] = version.split(".").map(Number);
  const [needMajor = 0, needMinor = 0] = NORMALIZATION_UNICODE_VERSION.split(".").map(Number);
  return major > needMajor || (major === needMajor && minor >= needMinor);
}

/**
 * `text.normalize(form)` as the crate's normalisers compute it. Normalisation of assigned characters
 * never changes between Unicode versions (the stability policy), and to the crate a character it does
 * not know is a starter without decomposition or composition: it only separates what is around it. So
 * the text between such characters is normalised by Node, and the characters are kept as they are.
 */
export function normalizeAsCrate(text: string, form: UnicodeForm): string {
  const unknown = unassignedInNormalizationVersion();
  unknown.lastIndex = 0;
  let match = unknown.exec(text);
  if (match === null) return text.normalize(form);
  let result = "";
  let start = 0;
  for (; match !== null; match = unknown.exec(text)) {
    result += text.slice(start, match.index).normalize(form) + match[0];
    start = unknown.lastIndex;
  }
  return result + text.slice(start).normalize(form);
}
