import { HeaderList, headerValueText, type HeaderEntry } from "../wire/headers.js";
import type { WireHeaderMutation } from "../wire/messages.js";

/** A mutation Envoy would refuse: it fails the request with HTTP 500. */
export class MutationError extends Error {}

const BAD_VALUE = /[\r\n\0]/;

function settable(name: string): boolean {
  return (
    !name.startsWith("x-envoy") && name !== ":method" && name !== ":authority" && name !== ":scheme" && name !== "host"
  );
}

function removable(name: string): boolean {
  return !name.startsWith(":") && name !== "host" && !name.startsWith("x-envoy");
}

/**
 * Applies a `HeaderMutation` the way Envoy's ext_proc filter does: removals first (pseudo-headers,
 * `host` and `x-envoy*` are kept), then sets. A set reads only `raw_value` (a value in `value` alone
 * becomes an empty header; both set is an error), reads the deprecated `append` (true adds another
 * value, otherwise the header is overwritten) and ignores `append_action`. Setting `x-envoy*`,
 * `:method`, `:authority`, `:scheme` or `host` is ignored.
 */
export function applyHeaderMutation(headers: HeaderList, mutation: WireHeaderMutation | undefined): HeaderList {
  if (mutation === undefined) return headers;
  let list: HeaderEntry[] = [...headers.entries()];
  for (const raw of mutation.remove_headers ?? []) {
    const name = raw.toLowerCase();
    if (removable(name)) list = list.filter(([n]) => n !== name);
  }
  for (const option of mutation.set_headers ?? []) {
    const header = option.header;
    const name = header?.key?.toLowerCase() ?? "";
    if (name === "") throw new MutationError("header mutation sets a header without a name");
    const hasRaw = header?.raw_value !== undefined && header.raw_value.length > 0;
    const hasValue = header?.value !== undefined && header.value !== "";
    if (hasRaw && hasValue) throw new MutationError(`header mutation for ${name} sets both value and raw_value`);
    const value = hasRaw ? headerValueText({ raw_value: header!.raw_value! }) : "";
    if (BAD_VALUE.test(value)) throw new MutationError(`header mutation for ${name} has an invalid value`);
    if (!settable(name)) continue;
    if (option.append?.value === true) {
      list.push([name, value]);
      continue;
    }
    const first = list.findIndex(([n]) => n === name);
    if (first < 0) {
      list.push([name, value]);
    } else {
      list[first] = [name, value];
      list = list.filter(([n], i) => i <= first || n !== name);
    }
  }
  return new HeaderList(list);
}
