/**
 * The GPT-2 byte-level alphabet: every byte maps to one printable code point, so byte strings can be
 * vocabulary keys. Printable Latin-1 bytes map to themselves, the others to U+0100 and up, in order.
 */
function byteToCodePoint(): Uint16Array {
  const table = new Uint16Array(256);
  let shifted = 256;
  for (let byte = 0; byte < 256; byte++) {
    const printable = (byte >= 0x21 && byte <= 0x7e) || (byte >= 0xa1 && byte <= 0xac) || byte >= 0xae;
    table[byte] = printable ? byte : shifted++;
  }
  return table;
}

export const BYTE_TO_CODE_POINT = byteToCodePoint();

const CODE_POINT_TO_BYTE = new Map(Array.from(BYTE_TO_CODE_POINT, (codePoint, byte) => [codePoint, byte]));
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The text a byte-level vocabulary entry stands for, or null when its bytes are not valid UTF-8. */
export function byteLevelText(token: string): string | null {
  const bytes = new Uint8Array(token.length);
  for (let i = 0; i < token.length; i++) {
    const byte = CODE_POINT_TO_BYTE.get(token.charCodeAt(i));
    if (byte === undefined) return null;
    bytes[i] = byte;
  }
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return null;
  }
}
