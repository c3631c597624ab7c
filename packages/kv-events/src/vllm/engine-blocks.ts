/**
 * What one worker rank's translator knows of the blocks the engine holds: engine block hash → router
 * local hash, parent engine hash, and the storage tiers holding the block (a bit per tier). Lets a
 * `BlockStored` without token ids (a lower tier announcing blocks the engine stored with their tokens
 * before) be given the router hashes and the parents of those blocks.
 *
 * Open addressing with linear probing and backward-shift deletion in one flat `Uint32Array`, seven words
 * per slot `[flags, engine lo, engine hi, local lo, local hi, parent lo, parent hi]` (flags: tier bits and
 * `HAS_PARENT`; 0 = empty slot). The u64 hashes are split through an 8-byte scratch, so recording a block
 * needs no BigInt arithmetic or allocation.
 */

const MIN_CAPACITY = 64;
const WORDS = 7;
const TIER_BITS = 0x0f;
const HAS_PARENT = 0x80;

const scratch64 = new BigUint64Array(1);
const scratch32 = new Uint32Array(scratch64.buffer);

export class EngineHashTable {
  private slots = new Uint32Array(MIN_CAPACITY * WORDS);
  private mask = MIN_CAPACITY - 1;
  private count = 0;

  /** Blocks remembered. */
  get size(): number {
    return this.count;
  }

  /**
   * Records the run `blockHashes[0..tokensHashes.length)` stored under `parent` (null: from block 0),
   * with router hashes `tokensHashes`, as held in the tier of `tierBit`.
   */
  addStored(
    blockHashes: readonly bigint[],
    parent: bigint | null,
    tokensHashes: BigUint64Array,
    tierBit: number,
  ): void {
    for (let i = 0; i < tokensHashes.length; i++) {
      if ((this.count + 1) * 4 > (this.mask + 1) * 3) this.grow();
      scratch64[0] = blockHashes[i]!;
      const at = this.locate(scratch32[0]!, scratch32[1]!) * WORDS;
      const slots = this.slots;
      if (slots[at] === 0) {
        slots[at + 1] = scratch32[0]!;
        slots[at + 2] = scratch32[1]!;
        this.count++;
      }
      scratch64[0] = tokensHashes[i]!;
      slots[at + 3] = scratch32[0]!;
      slots[at + 4] = scratch32[1]!;
      const parentOf = i === 0 ? parent : blockHashes[i - 1]!;
      let flags = (slots[at]! & TIER_BITS) | tierBit;
      if (parentOf !== null) {
        scratch64[0] = parentOf;
        slots[at + 5] = scratch32[0]!;
        slots[at + 6] = scratch32[1]!;
        flags |= HAS_PARENT;
      }
      slots[at] = flags;
    }
  }

  /** Slot of a remembered block, or -1. */
  find(blockHash: bigint): number {
    scratch64[0] = blockHash;
    const slot = this.locate(scratch32[0]!, scratch32[1]!);
    return this.slots[slot * WORDS] === 0 ? -1 : slot;
  }

  /** Router local hash of the block in `slot`. */
  localHash(slot: number): bigint {
    scratch32[0] = this.slots[slot * WORDS + 3]!;
    scratch32[1] = this.slots[slot * WORDS + 4]!;
    return scratch64[0]!;
  }

  /** Parent engine hash of the block in `slot` (null: it starts a sequence). */
  parent(slot: number): bigint | null {
    const at = slot * WORDS;
    if ((this.slots[at]! & HAS_PARENT) === 0) return null;
    scratch32[0] = this.slots[at + 5]!;
    scratch32[1] = this.slots[at + 6]!;
    return scratch64[0]!;
  }

  /** Marks the block in `slot` as held in the tier of `tierBit` too. */
  markTier(slot: number, tierBit: number): void {
    this.slots[slot * WORDS] = this.slots[slot * WORDS]! | tierBit;
  }

  /** The blocks left the tier of `tierBit`; a block held in no tier any more is forgotten. */
  remove(blockHashes: readonly bigint[], tierBit: number): void {
    const slots = this.slots;
    for (let i = 0; i < blockHashes.length; i++) {
      scratch64[0] = blockHashes[i]!;
      const slot = this.locate(scratch32[0]!, scratch32[1]!);
      const at = slot * WORDS;
      if (slots[at] === 0) continue;
      slots[at] = slots[at]! & ~tierBit;
      if ((slots[at]! & TIER_BITS) === 0) this.deleteSlot(slot);
    }
  }

  clear(): void {
    if (this.count === 0) return;
    this.slots = new Uint32Array(MIN_CAPACITY * WORDS);
    this.mask = MIN_CAPACITY - 1;
    this.count = 0;
  }

  private home(lo: number, hi: number): number {
    let h = Math.imul(lo ^ Math.imul(hi, 0x85ebca6b), 0x9e3779b1);
    h ^= h >>> 15;
    return h & this.mask;
  }

  /** The slot holding the key, or the empty slot where it would go. */
  private locate(lo: number, hi: number): number {
    const slots = this.slots;
    let slot = this.home(lo, hi);
    for (;;) {
      const at = slot * WORDS;
      if (slots[at] === 0 || (slots[at + 1] === lo && slots[at + 2] === hi)) return slot;
      slot = (slot + 1) & this.mask;
    }
  }

  /** Empties `slot`, shifting back later entries of its probe run so that lookups never stop early. */
  private deleteSlot(slot: number): void {
    const slots = this.slots;
    this.count--;
    let hole = slot;
    let next = (slot + 1) & this.mask;
    while (slots[next * WORDS] !== 0) {
      const home = this.home(slots[next * WORDS + 1]!, slots[next * WORDS + 2]!);
      // Move the entry into the hole unless its home lies cyclically in (hole, next].
      const stays = hole <= next ? home > hole && home <= next : home > hole || home <= next;
      if (!stays) {
        slots.copyWithin(hole * WORDS, next * WORDS, next * WORDS + WORDS);
        hole = next;
      }
      next = (next + 1) & this.mask;
    }
    slots[hole * WORDS] = 0;
  }

  private grow(): void {
    const old = this.slots;
    const capacity = (this.mask + 1) * 2;
    this.slots = new Uint32Array(capacity * WORDS);
    this.mask = capacity - 1;
    for (let at = 0; at < old.length; at += WORDS) {
      if (old[at] === 0) continue;
      const to = this.locate(old[at + 1]!, old[at + 2]!) * WORDS;
      this.slots.set(old.subarray(at, at + WORDS), to);
    }
  }
}
