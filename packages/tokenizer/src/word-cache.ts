/**
 * The encoder's memory of pieces (pre-tokenized words) it has already split into tokens.
 *
 * - Keys are copies: a piece is a slice of the prompt, and V8 keeps a slice of 13 or more characters
 *   as a view into its parent string, so caching the slice itself would keep the whole prompt alive.
 * - A piece is admitted the second time it is seen (a small table of hashes remembers first
 *   sightings): text full of words seen once (names, identifiers, random strings) then costs one hash
 *   per word instead of a copy, an insertion and, later, an eviction.
 * - Values live in one growable `Uint32Array`: a piece that is one token is stored as its id, a longer
 *   one as a negative reference to its ids there, so a cached piece allocates no object of its own.
 */

/** Pieces longer than this are never cached (rare, and they would bloat the cache). */
export const WORD_CACHE_MAX_PIECE = 64;
/** Entries kept before the cache starts over. */
export const WORD_CACHE_MAX_ENTRIES = 100_000;

/**
 * First sightings are remembered in a Bloom filter of this many bits (two bits per piece), cleared
 * after DOORKEEPER_WINDOW sightings so it stays sparse: a piece seen twice within the window is
 * admitted; a false positive (about 5% when full) only admits a piece one sighting early.
 */
const DOORKEEPER_BITS_LOG2 = 20;
const DOORKEEPER_BITS = 1 << DOORKEEPER_BITS_LOG2;
const DOORKEEPER_WINDOW = DOORKEEPER_BITS >> 3;

export interface IdSink {
  push(id: number): void;
  pushRange(ids: Int32Array, start: number, end: number): void;
}

export class WordCache {
  private readonly entries = new Map<string, number>();
  private readonly doorkeeper = new Int32Array(DOORKEEPER_BITS >> 5);
  private doorkeeperSightings = 0;
  /** `[length, ...ids]` runs of multi-token pieces. */
  private runs = new Int32Array(1024);
  private runsLength = 0;

  get size(): number {
    return this.entries.size;
  }

  /** Pushes the cached ids of `piece` to `out`; false when the piece is not cached. */
  emit(piece: string, out: IdSink): boolean {
    const value = this.entries.get(piece);
    if (value === undefined) return false;
    if (value >= 0) {
      out.push(value);
    } else {
      const at = -value;
      out.pushRange(this.runs, at, at + this.runs[at - 1]!);
    }
    return true;
  }

  /** Records `ids[start..end)` as the tokens of `piece` if this is its second sighting. */
  offer(piece: string, ids: Int32Array, start: number, end: number): void {
    if (piece.length > WORD_CACHE_MAX_PIECE || !this.seenBefore(piece)) return;
    if (this.entries.size >= WORD_CACHE_MAX_ENTRIES) this.clear();
    const count = end - start;
    if (count === 1) {
      this.entries.set(detach(piece), ids[start]!);
      return;
    }
    if (this.runsLength + count + 1 > this.runs.length) {
      const grown = new Int32Array(Math.max(this.runs.length * 2, this.runsLength + count + 1));
      grown.set(this.runs.subarray(0, this.runsLength));
      this.runs = grown;
    }
    this.runs[this.runsLength] = count;
    const at = this.runsLength + 1;
    for (let i = 0; i < count; i++) this.runs[at + i] = ids[start + i]!;
    this.runsLength = at + count;
    this.entries.set(detach(piece), -at);
  }

  clear(): void {
    this.entries.clear();
    this.runsLength = 0;
  }

  /** True when the piece was (probably) seen before; records it otherwise. */
  private seenBefore(piece: string): boolean {
    let hash = 0x811c9dc5;
    for (let i = 0; i < piece.length; i++) hash = Math.imul(hash ^ piece.charCodeAt(i), 0x01000193);
    const first = hash & (DOORKEEPER_BITS - 1);
    const second = Math.imul(hash ^ (hash >>> 15), 0x9e3779b1) >>> (32 - DOORKEEPER_BITS_LOG2);
    const filter = this.doorkeeper;
    const firstBit = 1 << (first & 31);
    const secondBit = 1 << (second & 31);
    if ((filter[first >>> 5]! & firstBit) !== 0 && (filter[second >>> 5]! & secondBit) !== 0) return true;
    if (++this.doorkeeperSightings > DOORKEEPER_WINDOW) {
      filter.fill(0);
      this.doorkeeperSightings = 1;
    }
    filter[first >>> 5] = filter[first >>> 5]! | firstBit;
    filter[second >>> 5] = filter[second >>> 5]! | secondBit;
    return false;
  }
}

/**
 * A copy of `piece` that does not reference the string it was sliced from. Concatenation makes a
 * rope that V8 flattens into a new string when sliced, and the slice then points into that copy.
 */
function detach(piece: string): string {
  return (" " + piece).slice(1);
}
