import {
  HeaderAppendAction,
  type WireHeaderMap,
  type WireHeaderValue,
  type WireHeaderValueOption,
} from "./messages.js";

/** One header as a (lower-case name, value) pair. */
export type HeaderEntry = readonly [name: string, value: string];

/**
 * An ordered header list, duplicates kept, names lower-cased (as Envoy sends them). Pseudo-headers
 * (`:method`, `:path`, `:authority`, `:status`, ...) are ordinary entries.
 */
export class HeaderList {
  private readonly list: HeaderEntry[];

  constructor(entries: Iterable<readonly [string, string]> = []) {
    this.list = [];
    for (const [name, value] of entries) this.list.push([name.toLowerCase(), value]);
  }

  /** Reads a wire `HeaderMap`: `raw_value` first (UTF-8, invalid bytes replaced), else `value`. */
  static fromWire(map: WireHeaderMap | undefined): HeaderList {
    const headers = new HeaderList();
    for (const header of map?.headers ?? []) {
      if (!header.key) continue;
      headers.list.push([header.key.toLowerCase(), headerValueText(header)]);
    }
    return headers;
  }

  /** First value of `name`, or undefined. */
  get(name: string): string | undefined {
    const key = name.toLowerCase();
    for (const [n, v] of this.list) if (n === key) return v;
    return undefined;
  }

  /** Every value of `name`, in order. */
  getAll(name: string): string[] {
    const key = name.toLowerCase();
    const values: string[] = [];
    for (const [n, v] of this.list) if (n === key) values.push(v);
    return values;
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  get size(): number {
    return this.list.length;
  }

  entries(): readonly HeaderEntry[] {
    return this.list;
  }

  [Symbol.iterator](): Iterator<HeaderEntry> {
    return this.list[Symbol.iterator]();
  }

  /** A copy without the given (lower-case) names. */
  without(names: ReadonlySet<string>): HeaderList {
    return new HeaderList(this.list.filter(([n]) => !names.has(n)));
  }

  /** The list as a wire `HeaderMap`, values in `raw_value` (as Envoy sends them). */
  toWire(): WireHeaderMap {
    return { headers: this.list.map(([key, value]) => ({ key, raw_value: Buffer.from(value, "utf8") })) };
  }
}

/** The text of a wire header value: `raw_value` decoded as UTF-8 when present, else `value`. */
export function headerValueText(header: WireHeaderValue): string {
  if (header.raw_value !== undefined && header.raw_value.length > 0) {
    return Buffer.from(header.raw_value.buffer, header.raw_value.byteOffset, header.raw_value.byteLength).toString(
      "utf8",
    );
  }
  return header.value ?? "";
}

/**
 * A header to set, as Envoy's ext_proc applies it: the value in `raw_value` only (a value in `value` is
 * read as empty; both set fails the request), `append` left unset (overwrite), and `append_action`
 * OVERWRITE_IF_EXISTS_OR_ADD for data planes that read that field instead.
 */
export function setHeaderOption(name: string, value: string): WireHeaderValueOption {
  return {
    header: { key: name, raw_value: Buffer.from(value, "utf8") },
    append_action: HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
  };
}
