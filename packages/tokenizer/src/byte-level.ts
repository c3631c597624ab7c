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
