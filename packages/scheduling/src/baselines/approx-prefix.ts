import { xxh64 } from "@node-rs/xxhash";

/**
 * GAIE's approximate prefix-cache producer: no tokenizer, characters stand in for tokens. The request's
 * input bytes are cut into blocks of `blockSizeTokens × 4` characters, each hashed with xxHash64 chained
 * from the model name; every endpoint has an LRU of the hashes routed to it (learned optimistically at
 * routing time, nothing learned from the model servers), and a match walks the request's hashes in order
 * until no endpoint holds one, every holder earning +1 per hash.
 */

/** GAIE's characters per token. */
export const AVERAGE_CHARACTERS_PER_TOKEN = 4;

export interface ApproxPrefixOptions {
  /** Tokens per block (GAIE default 16; with auto-tuning the engines' `block_size`). */
  readonly blockSizeTokens?: number;
  /** Longest prefix considered, in blocks (default 256). */
  readonly maxPrefixBlocks?: number;
  /** Hashes remembered per endpoint (default 31 250; with auto-tuning the engines' `num_gpu_blocks`). */
  readonly lruCapacityPerServer?: number;
}

export interface PrefixMatch {
  /** Hashes matched per endpoint. */
  readonly matched: ReadonlyMap<string, number>;
  /** The request's block count (after truncation). */
  readonly total: number;
}

const le64 = (v: bigint, out: Uint8Array, at: number) => {
  for (let i = 0; i < 8; i++) out[at + i] = Number((v >> BigInt(8 * i)) & 0xffn);
};

/**
 * The chained block hashes of `input`: `prev = xxh64(model ‖ salt)`, then `h_i = xxh64(block_i ‖
 * LE_u64(prev))` over blocks of `blockChars` bytes, the trailing partial block hashed too; inputs shorter
 * than one block give none. At most `maxBlocks` hashes.
 */
export function approxPrefixHashes(
  input: Uint8Array,
  model: string,
  blockChars: number,
  maxBlocks = Infinity,
  salt = "",
): bigint[] {
  if (input.length < blockChars) return [];
  let prev = xxh64(new TextEncoder().encode(model + salt), 0n);
  const out: bigint[] = [];
  const buf = new Uint8Array(blockChars + 8);
  for (let at = 0; at < input.length && out.length < maxBlocks; at += blockChars) {
    const block = input.subarray(at, Math.min(input.length, at + blockChars));
    buf.set(block, 0);
    le64(prev, buf, block.length);
    prev = xxh64(buf.subarray(0, block.length + 8), 0n);
    out.push(prev);
  }
  return out;
}

export class ApproxPrefixIndex {
  readonly blockChars: number;
  readonly maxPrefixBlocks: number;
  readonly capacity: number;
  /** Per endpoint: its hashes in LRU order (oldest first). */
  private readonly lru = new Map<string, Map<bigint, true>>();
  /** Hash → endpoints holding it. */
  private readonly holders = new Map<bigint, Set<string>>();

  constructor(options: ApproxPrefixOptions = {}) {
    this.blockChars = (options.blockSizeTokens ?? 16) * AVERAGE_CHARACTERS_PER_TOKEN;
    this.maxPrefixBlocks = options.maxPrefixBlocks ?? 256;
    this.capacity = options.lruCapacityPerServer ?? 31_250;
  }

  /** The request's hashes (see `approxPrefixHashes`), truncated to `maxPrefixBlocks`. */
  hashes(input: Uint8Array, model: string, salt = ""): bigint[] {
    return approxPrefixHashes(input, model, this.blockChars, this.maxPrefixBlocks, salt);
  }

  /** Walks `hashes` in order until no endpoint holds one; every holder of a walked hash gets +1. */
  match(hashes: readonly bigint[]): PrefixMatch {
    const matched = new Map<string, number>();
    for (const h of hashes) {
      const servers = this.holders.get(h);
      if (!servers || servers.size === 0) break;
      for (const s of servers) matched.set(s, (matched.get(s) ?? 0) + 1);
    }
    return { matched, total: hashes.length };
  }

  /** Optimistic learning: every hash of the request joins `server`'s LRU (the oldest evicted past capacity). */
  learn(server: string, hashes: readonly bigint[]): void {
    let lru = this.lru.get(server);
    if (!lru) this.lru.set(server, (lru = new Map()));
    for (const h of hashes) {
      if (lru.delete(h)) {
        lru.set(h, true);
        continue;
      }
      lru.set(h, true);
      let set = this.holders.get(h);
      if (!set) this.holders.set(h, (set = new Set()));
      set.add(server);
      if (lru.size > this.capacity) {
        const oldest = lru.keys().next().value as bigint;
        lru.delete(oldest);
        const held = this.holders.get(oldest);
        held?.delete(server);
        if (held?.size === 0) this.holders.delete(oldest);
      }
    }
  }

  /** Forgets an endpoint that left the pool. */
  removeServer(server: string): void {
    const lru = this.lru.get(server);
    if (!lru) return;
    for (const h of lru.keys()) {
      const held = this.holders.get(h);
      held?.delete(server);
      if (held?.size === 0) this.holders.delete(h);
    }
    this.lru.delete(server);
  }

  /** Hashes remembered by `server`. */
  size(server: string): number {
    return this.lru.get(server)?.size ?? 0;
  }
}
