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

/** Parses JSON text as Python does (see above); malformed text is an `InvalidRequest` on `field`. */
export function parseLosslessJson(text: string, field: string): JsonValue {
  return new Parser(text, field).parse();
}
