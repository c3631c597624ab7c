import { createHash } from "node:crypto";
import { chainHash, computeLocalHash, saltedSeed, XXH3_SEED } from "@dynamo/kv-indexer";
import type { BlockHashAlgorithm } from "./types.js";

/** What a block's hash passes on to the next block of its chain: a SHA-256 digest or a u64. */
export type ChainValue = Uint8Array | bigint;

/** Computes engine block hashes, block after block along a sequence. */
export interface BlockHasher {
  readonly algorithm: BlockHashAlgorithm;
  /**
   * Chain value of the block `tokens[start, start + blockSize)` following the block whose chain value
   * is `parent` (null for block 0), salted with the LoRA adapter name.
   */
  chain(parent: ChainValue | null, tokens: ArrayLike<number>, start: number, loraName: string | null): ChainValue;
  /** The u64 block hash published in events for a chain value. */
  blockHash(value: ChainValue): bigint;
}

/** A hasher of `algorithm` for blocks of `blockSize` tokens (`seed`: `sha256_cbor`'s `PYTHONHASHSEED`). */
export function createBlockHasher(algorithm: BlockHashAlgorithm, blockSize: number, seed: string): BlockHasher {
  return algorithm === "xxh3" ? new Xxh3Hasher(blockSize) : new Sha256CborHasher(blockSize, seed);
}

/** vLLM's `NONE_HASH` for `sha256_cbor`: SHA-256 of the seed as a CBOR text string. */
export function sha256CborNoneHash(seed: string): Uint8Array {
  const writer = new CborWriter(16);
  writer.text(seed);
  return sha256(writer.bytes());
}

function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(bytes).digest());
}

/** The low 64 bits of a digest: its last 8 bytes read big-endian. */
function low64(digest: Uint8Array): bigint {
  const view = new DataView(digest.buffer, digest.byteOffset, digest.byteLength);
  return view.getBigUint64(digest.byteLength - 8, false);
}

/**
 * vLLM's `sha256_cbor`: `digest = SHA-256(CBOR([parent digest as bytes, [token ids], extra]))`, extra =
 * null or `[lora_name]`; the event hash is the digest's low 64 bits.
 */
class Sha256CborHasher implements BlockHasher {
  readonly algorithm = "sha256_cbor" as const;
  private readonly noneHash: Uint8Array;
  private readonly writer: CborWriter;

  constructor(
    private readonly blockSize: number,
    seed: string,
  ) {
    this.noneHash = sha256CborNoneHash(seed);
    this.writer = new CborWriter(64 + blockSize * 5);
  }

  chain(parent: ChainValue | null, tokens: ArrayLike<number>, start: number, loraName: string | null): Uint8Array {
    const w = this.writer;
    w.reset();
    w.arrayHeader(3);
    w.byteString(parent === null ? this.noneHash : (parent as Uint8Array));
    w.arrayHeader(this.blockSize);
    for (let i = start, end = start + this.blockSize; i < end; i++) w.uint(tokens[i]!);
    if (loraName) {
      w.arrayHeader(1);
      w.text(loraName);
    } else {
      w.nil();
    }
    return sha256(w.bytes());
  }

  blockHash(value: ChainValue): bigint {
    return low64(value as Uint8Array);
  }
}

/** Dynamo mocker's: the router's XXH3 local hash (LoRA-salted seed) chained into its sequence hash. */
class Xxh3Hasher implements BlockHasher {
  readonly algorithm = "xxh3" as const;
  private readonly seeds = new Map<string, bigint>();

  constructor(private readonly blockSize: number) {}

  chain(parent: ChainValue | null, tokens: ArrayLike<number>, start: number, loraName: string | null): bigint {
    const end = start + this.blockSize;
    const block =
      tokens instanceof Uint32Array ? tokens.subarray(start, end) : Array.prototype.slice.call(tokens, start, end);
    const local = computeLocalHash(block, loraName ? this.seedOf(loraName) : XXH3_SEED);
    return parent === null ? local : chainHash(parent as bigint, local);
  }

  blockHash(value: ChainValue): bigint {
    return value as bigint;
  }

  private seedOf(loraName: string): bigint {
    let seed = this.seeds.get(loraName);
    if (seed === undefined) {
      seed = saltedSeed({ loraName });
      this.seeds.set(loraName, seed);
    }
    return seed;
  }
}

const textEncoder = new TextEncoder();

/** The few canonical CBOR items the block hash needs, written into a growable buffer. */
class CborWriter {
  private buf: Uint8Array;
  private at = 0;

  constructor(initial: number) {
    this.buf = new Uint8Array(initial);
  }

  reset(): void {
    this.at = 0;
  }

  bytes(): Uint8Array {
    return this.buf.subarray(0, this.at);
  }

  uint(value: number): void {
    this.head(0, value);
  }

  arrayHeader(length: number): void {
    this.head(4, length);
  }

  byteString(bytes: Uint8Array): void {
    this.head(2, bytes.length);
    this.ensure(bytes.length);
    this.buf.set(bytes, this.at);
    this.at += bytes.length;
  }

  text(value: string): void {
    const bytes = textEncoder.encode(value);
    this.head(3, bytes.length);
    this.ensure(bytes.length);
    this.buf.set(bytes, this.at);
    this.at += bytes.length;
  }

  nil(): void {
    this.ensure(1);
    this.buf[this.at++] = 0xf6;
  }

  /** Major type + argument in its shortest form (arguments below 2^32). */
  private head(major: number, value: number): void {
    this.ensure(5);
    const b = this.buf;
    const m = major << 5;
    if (value < 24) {
      b[this.at++] = m | value;
    } else if (value < 0x100) {
      b[this.at++] = m | 24;
      b[this.at++] = value;
    } else if (value < 0x10000) {
      b[this.at++] = m | 25;
      b[this.at++] = value >>> 8;
      b[this.at++] = value & 0xff;
    } else {
      b[this.at++] = m | 26;
      b[this.at++] = value >>> 24;
      b[this.at++] = (value >>> 16) & 0xff;
      b[this.at++] = (value >>> 8) & 0xff;
      b[this.at++] = value & 0xff;
    }
  }

  private ensure(extra: number): void {
    if (this.at + extra <= this.buf.length) return;
    const grown = new Uint8Array(Math.max(this.buf.length * 2, this.at + extra));
    grown.set(this.buf.subarray(0, this.at));
    this.buf = grown;
  }
}
