import type { BlockRemovedEvent, KvEvent } from "./types.js";

/**
 * The KV events of the current step, in the order the cache changed. Consecutive removals share one
 * `BlockRemoved`. When nobody listens (`enabled` false) nothing is recorded.
 */
export class EventBuffer {
  private events: KvEvent[] = [];
  private lastRemoved: { blockHashes: bigint[] } | null = null;

  constructor(
    readonly enabled: boolean,
    private readonly medium: string,
    private readonly blockSize: number,
  ) {}

  get pending(): number {
    return this.events.length;
  }

  stored(parentBlockHash: bigint | null, blockHashes: bigint[], tokenIds: number[], loraName: string | null): void {
    this.lastRemoved = null;
    this.events.push({
      type: "BlockStored",
      blockHashes,
      parentBlockHash,
      tokenIds,
      blockSize: this.blockSize,
      loraId: null,
      medium: this.medium,
      loraName,
    });
  }

  removed(hash: bigint): void {
    if (this.lastRemoved !== null) {
      this.lastRemoved.blockHashes.push(hash);
      return;
    }
    const event: BlockRemovedEvent & { blockHashes: bigint[] } = {
      type: "BlockRemoved",
      blockHashes: [hash],
      medium: this.medium,
    };
    this.lastRemoved = event;
    this.events.push(event);
  }

  cleared(): void {
    this.lastRemoved = null;
    this.events.push({ type: "AllBlocksCleared" });
  }

  /** The events recorded since the last call. */
  take(): KvEvent[] {
    const out = this.events;
    this.events = [];
    this.lastRemoved = null;
    return out;
  }
}
