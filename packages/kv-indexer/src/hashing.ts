import { xxh3 } from "@node-rs/xxhash";

/** Seed of every router-side XXH3-64 hash (Dynamo's `XXH3_SEED`). */
export const XXH3_SEED = 1337n;

const U64_MASK = (1n << 64n) - 1n;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Optional salts of the local block hash. Empty strings count as absent. */
export interface HashSalt {
  /** LoRA adapter name: adds `XXH3_64(utf8(loraName), seed 0)` to the seed. */
  loraName?: string | null;
  /** Cache namespace (`cache_salt`): adds `XXH3_64(utf8(cacheSalt), seed 1)` to the seed. */
  cacheSalt?: string | null;
}

/**
 * Seed for local block hashes: 1337, plus the LoRA and cache-namespace salts (wrapping mod 2^64).
 * Salts change the seed, never the hashed bytes.
 */
export function saltedSeed(salt?: HashSalt): bigint {
  let seed = XXH3_SEED;
  if (salt?.loraName) seed = (seed + xxh3.xxh64(Buffer.from(salt.loraName, "utf8"), 0n)) & U64_MASK;
  if (salt?.cacheSalt) seed = (seed + xxh3.xxh64(Buffer.from(salt.cacheSalt, "utf8"), 1n)) & U64_MASK;
  return seed;
}

/** XXH3-64 of raw bytes with a 64-bit seed (default 1337). */
export function xxh3Hash(bytes: Uint8Array, seed: bigint = XXH3_SEED): bigint {
  return xxh3.xxh64(bytes, seed);
}

let scratch = new Uint32Array(1024);

/** Little-endian u32 bytes of `tokens[start, end)`, without copying when the input allows it. */
function tokenBytes(tokens: ArrayLike<number>, start: number, end: number, extraU64: number): Uint8Array {
  const count = end - start;
  if (LITTLE_ENDIAN && extraU64 === 0 && tokens instanceof Uint32Array) {
    return new Uint8Array(tokens.buffer, tokens.byteOffset + start * 4, count * 4);
  }
  const words = count + extraU64 * 2;
  if (scratch.length < words) scratch = new Uint32Array(Math.max(words, scratch.length * 2));
  for (let i = 0; i < count; i++) scratch[i] = tokens[start + i]!;
  if (!LITTLE_ENDIAN) {
    const view = new DataView(scratch.buffer);
    for (let i = 0; i < count; i++) view.setUint32(i * 4, scratch[i]!, true);
  }
  return new Uint8Array(scratch.buffer, 0, words * 4);
}

/**
 * Local hash of one block: XXH3-64 over the tokens as little-endian u32. When the block carries
 * multimodal objects, their `mm_hash` values are sorted and appended as little-endian u64.
 */
export function computeLocalHash(
  tokens: ArrayLike<number>,
  seed: bigint = XXH3_SEED,
  mmHashes?: readonly bigint[],
): bigint {
  return localHashOfRange(tokens, 0, tokens.length, seed, mmHashes);
}

function localHashOfRange(
  tokens: ArrayLike<number>,
  start: number,
  end: number,
  seed: bigint,
  mmHashes?: readonly bigint[],
): bigint {
  const extra = mmHashes?.length ?? 0;
  const bytes = tokenBytes(tokens, start, end, extra);
  if (extra > 0) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const sorted = [...mmHashes!].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    sorted.forEach((h, i) => view.setBigUint64((end - start) * 4 + i * 8, h & U64_MASK, true));
  }
  return xxh3.xxh64(bytes, seed);
}

export interface BlockHashOptions extends HashSalt {
  /** Per-block multimodal hashes (index = block number); blocks without objects have `undefined`. */
  blockMmHashes?: ReadonlyArray<readonly bigint[] | undefined>;
}

/**
 * Local hashes of every complete block of `tokens` (`floor(n / blockSize)` of them; a trailing partial
 * block is ignored). `blockSize <= 0` gives an empty array.
 */
export function computeBlockHashes(
  tokens: ArrayLike<number>,
  blockSize: number,
  options?: BlockHashOptions,
): BigUint64Array {
  if (blockSize <= 0) return new BigUint64Array(0);
  const blocks = Math.floor(tokens.length / blockSize);
  const out = new BigUint64Array(blocks);
  const seed = options?.loraName || options?.cacheSalt ? saltedSeed(options) : XXH3_SEED;
  for (let b = 0; b < blocks; b++) {
    const start = b * blockSize;
    out[b] = localHashOfRange(tokens, start, start + blockSize, seed, options?.blockMmHashes?.[b]);
  }
  return out;
}

const chainScratch = new BigUint64Array(2);
const chainBytes = new Uint8Array(chainScratch.buffer);

/** `XXH3_64(LE_u64(parent) ‖ LE_u64(local), seed 1337)`: the next sequence hash in a chain. */
export function chainHash(parent: bigint, local: bigint): bigint {
  if (LITTLE_ENDIAN) {
    chainScratch[0] = parent;
    chainScratch[1] = local;
  } else {
    const view = new DataView(chainBytes.buffer);
    view.setBigUint64(0, parent, true);
    view.setBigUint64(8, local, true);
  }
  return xxh3.xxh64(chainBytes, XXH3_SEED);
}

/**
 * Chained sequence hashes: `seq[0] = local[0]`, `seq[i] = chainHash(seq[i-1], local[i])`.
 * With `parent` given, the chain continues from that sequence hash (`seq[0] = chainHash(parent, local[0])`).
 */
export function computeSequenceHashes(localHashes: BigUint64Array, parent?: bigint): BigUint64Array {
  const out = new BigUint64Array(localHashes.length);
  let prev = parent;
  for (let i = 0; i < localHashes.length; i++) {
    const local = localHashes[i]!;
    prev = prev === undefined ? local : chainHash(prev, local);
    out[i] = prev;
  }
  return out;
}

/** Number of blocks a prompt occupies, counting a trailing partial block: `ceil(isl / blockSize)`. */
export function requiredBlocks(isl: number, blockSize: number): number {
  return blockSize > 0 ? Math.ceil(isl / blockSize) : 0;
}
