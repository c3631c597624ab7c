import { generalCategoryClass } from "./unicode.js";

/**
 * Translation of the Oniguruma split patterns found in `tokenizer.json` into JavaScript regular
 * expressions with identical matches. Only the constructs whose semantics are known to agree are
 * translated; anything else returns null so the caller can fall back to a general implementation.
 */

/** Oniguruma's Unicode `\s`: the White_Space property (JavaScript's `\s` differs on U+0085 and U+FEFF). */
const WHITE_SPACE = "\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

/** General categories accepted in `\p{..}` by both engines with the same meaning. */
const GENERAL_CATEGORY = /^(?:[LMNPSZC]|L[ultmo]|M[nce]|N[dlo]|P[cdseifo]|S[mcko]|Z[slp]|C[cfson])$/;

/** Characters escaped with a backslash in `u` mode (the only escapable ones, `-` only inside classes). */
const SYNTAX_CHARS = new Set("^$\\.*+?()[]{}|/");

let caseVariantsCache: Map<string, string[]> | undefined;

/** Every code point that matches `char` case-insensitively (simple case folding, as both engines apply it). */
function caseVariants(char: string): string[] {
  caseVariantsCache ??= new Map();
  let variants = caseVariantsCache.get(char);
  if (variants === undefined) {
    const folds = new RegExp(`^${char}$`, "iu");
    variants = [];
    for (let cp = 0; cp <= 0x1ffff; cp++) {
      const candidate = String.fromCodePoint(cp);
      if (folds.test(candidate)) variants.push(candidate);
    }
    caseVariantsCache.set(char, variants);
  }
  return variants;
}

function literal(char: string, inClass: boolean): string {
  return SYNTAX_CHARS.has(char) || (inClass && char === "-") ? `\\${char}` : char;
}

class PatternTranslator {
  private pos = 0;
  private out = "";

  constructor(private readonly src: string) {}

  translate(): string | null {
    while (this.pos < this.src.length) {
      if (!this.step()) return null;
    }
    return this.out;
  }

  private step(): boolean {
    const char = this.src[this.pos]!;
    switch (char) {
      case "\\":
        return this.escape(false);
      case "[":
        return this.characterClass();
      case "(":
        return this.groupOpen();
      case ".":
      case "^":
      case "$":
        return false;
      case "*":
      case "+":
      case "?":
      case "}":
        this.out += char;
        this.pos++;
        return this.afterQuantifier();
      default:
        this.out += char;
        this.pos++;
        return true;
    }
  }

  /** A `+` right after a quantifier is possessive (or stacked) in Oniguruma; JavaScript has neither. */
  private afterQuantifier(): boolean {
    const next = this.src[this.pos];
    if (next === "+") return false;
    if (next === "?") {
      this.out += "?";
      this.pos++;
    }
    return true;
  }

  private escape(inClass: boolean): boolean {
    const next = this.src[this.pos + 1];
    if (next === undefined) return false;
    this.pos += 2;
    switch (next) {
      case "s":
        this.out += inClass ? WHITE_SPACE : `[${WHITE_SPACE}]`;
        return true;
      case "S":
        if (inClass) return false;
        this.out += `[^${WHITE_SPACE}]`;
        return true;
      case "p":
      case "P": {
        const close = this.src.indexOf("}", this.pos);
        if (this.src[this.pos] !== "{" || close < 0) return false;
        const name = this.src.slice(this.pos + 1, close);
        if (!GENERAL_CATEGORY.test(name)) return false;
        // The crate's Unicode version, not V8's: a class spelled out from the generated tables.
        const members = generalCategoryClass(name, next === "P");
        if (members === null) return false;
        this.out += inClass ? members : `[${members}]`;
        this.pos = close + 1;
        return true;
      }
      case "r":
      case "n":
      case "t":
      case "f":
      case "v":
        this.out += `\\${next}`;
        return true;
      case "x": {
        const braced = /^\{([0-9a-fA-F]{1,6})\}/.exec(this.src.slice(this.pos));
        if (braced) {
          this.out += `\\u{${braced[1]}}`;
          this.pos += braced[0].length;
          return true;
        }
        const short = /^[0-9a-fA-F]{2}/.exec(this.src.slice(this.pos));
        if (!short) return false;
        this.out += `\\x${short[0]}`;
        this.pos += 2;
        return true;
      }
      case "u": {
        const hex = /^[0-9a-fA-F]{4}/.exec(this.src.slice(this.pos));
        if (!hex) return false;
        this.out += `\\u${hex[0]}`;
        this.pos += 4;
        return true;
      }
      default:
        if (/[0-9A-Za-z]/.test(next)) return false;
        this.out += literal(next, inClass);
        return true;
    }
  }

  private characterClass(): boolean {
    this.out += "[";
    this.pos++;
    if (this.src[this.pos] === "^") {
      this.out += "^";
      this.pos++;
    }
    let first = true;
    while (this.pos < this.src.length) {
      const char = this.src[this.pos]!;
      if (char === "]" && !first) {
        this.out += "]";
        this.pos++;
        return true;
      }
      first = false;
      if (char === "[" || (char === "&" && this.src[this.pos + 1] === "&")) return false;
      if (char === "\\") {
        if (!this.escape(true)) return false;
        continue;
      }
      this.out += char === "-" ? "-" : literal(char, true); // an unescaped "-" is a range
      this.pos++;
    }
    return false;
  }

  private groupOpen(): boolean {
    const rest = this.src.slice(this.pos);
    const kept = /^\((?:\?[:=!]|\?<[=!])?/.exec(rest)![0];
    if (rest.startsWith("(?i:")) return this.caseInsensitiveGroup();
    if (rest.startsWith("(?") && kept === "(") return false;
    this.out += kept;
    this.pos += kept.length;
    return true;
  }

  /** `(?i:'s|'t|...)`: literal alternatives only, each letter expanded to its case variants. */
  private caseInsensitiveGroup(): boolean {
    const close = this.src.indexOf(")", this.pos);
    if (close < 0) return false;
    const body = this.src.slice(this.pos + 4, close);
    if (/[\\[\](){}*+?.^$]/.test(body)) return false;
    let translated = "";
    for (const char of body) {
      if (char === "|") {
        translated += "|";
        continue;
      }
      const variants = caseVariants(char);
      translated += variants.length > 1 ? `[${variants.map((v) => literal(v, true)).join("")}]` : literal(char, false);
    }
    this.out += `(?:${translated})`;
    this.pos = close + 1;
    return true;
  }
}

/** The JavaScript equivalent (flags `gu`) of an Oniguruma split pattern, or null when not translatable. */
export function translateSplitPattern(pattern: string): RegExp | null {
  const source = new PatternTranslator(pattern).translate();
  if (source === null) return null;
  try {
    return new RegExp(source, "gu");
  } catch {
    return null;
  }
}

/** GPT-2's pattern, applied by the ByteLevel pre-tokenizer when `use_regex` is true. */
export const GPT2_SPLIT_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
