import { InvalidRequest } from "./errors.js";
import type { JsonObject, JsonValue } from "./model-files.js";

/**
 * JSON parsed as Python's `json.loads` sees it, which is what the engine renders chat templates
 * from: a number written with a fraction or an exponent is a float (`1.0` stays a float, not the
 * integer `1`), an integer keeps every digit, and objects keep their keys in written order (a
 * JavaScript object puts integer-like keys first).
 */

/** A number the engine holds as a Python float: one written with a fraction or an exponent. */
export class PythonFloat {
  constructor(readonly value: number) {}
  valueOf(): number {
    return this.value;
  }
}

/** An integer beyond 2^53, kept digit for digit (`value` is the nearest double). */
export class PythonInt {
  readonly value: number;
  constructor(readonly digits: string) {
    this.value = Number(digits);
  }
  valueOf(): number {
    return this.value;
  }
}

export type PythonNumber = PythonFloat | PythonInt;

export const isPythonNumber = (value: unknown): value is PythonNumber =>
  value instanceof PythonFloat || value instanceof PythonInt;

/** The number a JSON value holds, plain or Python-typed; undefined for anything else. */
export function numericValue(value: unknown): number | undefined {
  if (typeof value === "number") return value;
  return isPythonNumber(value) ? value.value : undefined;
}

/** Written key order of objects with integer-like keys (which JavaScript would list first). */
export const KEY_ORDER = Symbol("keyOrder");

const MAX_DEPTH = 512;
const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
const WHITESPACE = /[ \t\n\r]*/y;
const INTEGER_LIKE = /^(?:0|[1-9]\d*)$/;

class Parser {
  private pos = 0;

  constructor(
    private readonly text: string,
    private readonly field: string,
  ) {}

  parse(): JsonValue {
    const value = this.value(0);
    this.skipWhitespace();
    if (this.pos < this.text.length) this.fail("unexpected text after the value");
    return value;
  }

  private fail(reason: string): never {
    throw new InvalidRequest(this.field, `not valid JSON: ${reason} at character ${this.pos}`);
  }

  private skipWhitespace(): void {
    WHITESPACE.lastIndex = this.pos;
    WHITESPACE.test(this.text);
    this.pos = WHITESPACE.lastIndex;
  }

  private value(depth: number): JsonValue {
    if (depth > MAX_DEPTH) this.fail(`nested deeper than ${MAX_DEPTH} levels`);
    this.skipWhitespace();
    const char = this.text[this.pos];
    if (char === "{") return this.object(depth);
    if (char === "[") return this.array(depth);
    if (char === '"') return this.string();
    for (const [word, value] of [
      ["true", true],
      ["false", false],
      ["null", null],
    ] as const) {
      if (this.text.startsWith(word, this.pos)) {
        this.pos += word.length;
        return value;
      }
    }
    return this.number();
  }

  private number(): JsonValue {
    NUMBER.lastIndex = this.pos;
    const match = NUMBER.exec(this.text);
    if (match === null) this.fail("expected a value");
    this.pos = NUMBER.lastIndex;
    const text = match[0];
    if (match[1] !== undefined || match[2] !== undefined) return new PythonFloat(Number(text)) as never;
    const value = Number(text);
    if (Number.isSafeInteger(value)) return value === 0 ? 0 : value; // Python has no integer -0
    return new PythonInt(BigInt(text).toString()) as never;
  }

  private string(): string {
    const start = this.pos;
    let i = start + 1;
    for (;;) {
      const code = this.text.charCodeAt(i);
      if (Number.isNaN(code)) {
        this.pos = i;
        this.fail("unterminated string");
      }
      if (code === 0x22) break;
      i += code === 0x5c ? 2 : 1;
    }
    this.pos = i + 1;
    try {
      return JSON.parse(this.text.slice(start, i + 1)) as string;
    } catch {
      this.pos = start;
      return this.fail("invalid string");
    }
  }

  private expect(char: string): void {
    this.skipWhitespace();
    if (this.text[this.pos] !== char) this.fail(`expected ${JSON.stringify(char)}`);
    this.pos++;
  }

  /** True (and consumed) when the next character is `close`; otherwise expects a comma unless first. */
  private next(close: string, first: boolean): boolean {
    this.skipWhitespace();
    if (this.text[this.pos] === close) {
      this.pos++;
      return true;
    }
    if (!first) this.expect(",");
    return false;
  }

  private array(depth: number): JsonValue[] {
    this.pos++;
    const items: JsonValue[] = [];
    while (!this.next("]", items.length === 0)) items.push(this.value(depth + 1));
    return items;
  }

  private object(depth: number): JsonObject {
    this.pos++;
    const object: JsonObject = {};
    const keys: string[] = [];
    let integerLike = false;
    while (!this.next("}", keys.length === 0)) {
      this.skipWhitespace();
      if (this.text[this.pos] !== '"') this.fail("expected a key");
      const key = this.string();
      this.expect(":");
      const value = this.value(depth + 1);
      if (!Object.hasOwn(object, key)) {
        keys.push(key);
        integerLike ||= INTEGER_LIKE.test(key);
      }
      Object.defineProperty(object, key, { value, writable: true, enumerable: true, configurable: true });
    }
    if (integerLike) (object as { [KEY_ORDER]?: string[] })[KEY_ORDER] = keys;
    return object;
  }
}

/**
 * Whether `JSON.parse` gives exactly what the parser above gives for `text`: no number written with a
 * fraction or an exponent, no integer long enough to pass 2^53, no `-0`, no integer-like object key, and no
 * nesting deeper than the parser allows. One pass over the characters; text it cannot vouch for (including
 * malformed text) goes to the parser. Most request bodies qualify: token ids and chat text.
 */
function plainParseSuffices(text: string): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0x22) {
      // A string: skip it; an integer-like object key (digits followed by a colon) needs the parser.
      const start = i + 1;
      let digitsOnly = true;
      for (i = start; ; i++) {
        const c = text.charCodeAt(i);
        if (Number.isNaN(c)) return false;
        if (c === 0x22) break;
        if (c === 0x5c) {
          i++;
          digitsOnly = false;
        } else if (c < 0x30 || c > 0x39) digitsOnly = false;
      }
      if (digitsOnly && i > start) {
        let j = i + 1;
        while (
          j < text.length &&
          (text.charCodeAt(j) === 0x20 ||
            text.charCodeAt(j) === 0x0a ||
            text.charCodeAt(j) === 0x0d ||
            text.charCodeAt(j) === 0x09)
        )
          j++;
        if (text.charCodeAt(j) === 0x3a) return false;
      }
    } else if (code === 0x7b || code === 0x5b) {
      if (++depth > MAX_DEPTH) return false;
    } else if (code === 0x7d || code === 0x5d) {
      depth--;
    } else if (code === 0x2d || (code >= 0x30 && code <= 0x39)) {
      // A number: only short plain integers, and never -0.
      let digits = 0;
      let j = code === 0x2d ? i + 1 : i;
      const first = text.charCodeAt(j);
      for (; j < text.length; j++) {
        const c = text.charCodeAt(j);
        if (c >= 0x30 && c <= 0x39) digits++;
        else if (c === 0x2e || c === 0x65 || c === 0x45) return false;
        else break;
      }
      if (digits === 0 || digits > 15 || (code === 0x2d && first === 0x30)) return false;
      i = j - 1;
    }
  }
  return true;
}

/** Parses JSON text as Python does (see above); malformed text is an `InvalidRequest` on `field`. */
export function parseLosslessJson(text: string, field: string): JsonValue {
  if (plainParseSuffices(text)) {
    try {
      return JSON.parse(text) as JsonValue;
    } catch {
      // Malformed: the parser below says where and why.
    }
  }
  return parseWithParser(text, field);
}

/** The character-by-character parser alone (what `parseLosslessJson` must always agree with). */
export function parseWithParser(text: string, field: string): JsonValue {
  return new Parser(text, field).parse();
}
