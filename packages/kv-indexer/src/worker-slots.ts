import { workerRankKey, type WorkerRank, type WorkerRankKey } from "./events.js";

/**
 * Dense small-integer ids ("slots") for worker ranks, so that per-worker state can live in arrays and
 * bitsets. Released slots are reused.
 */
export class WorkerSlots {
  private readonly byWorker = new Map<bigint, Map<number, number>>();
  private readonly keys: WorkerRankKey[] = [];
  private readonly ranks: (WorkerRank | undefined)[] = [];
  private readonly freeSlots: number[] = [];
  // Consecutive events usually come from the same rank: remember the last answer.
  private lastWorkerId = -1n;
  private lastDpRank = -1;
  private lastSlot = -1;

  /** Slot of a worker rank, or -1 when it has none. */
  find(workerId: bigint, dpRank: number): number {
    if (workerId === this.lastWorkerId && dpRank === this.lastDpRank) return this.lastSlot;
    const slot = this.byWorker.get(workerId)?.get(dpRank) ?? -1;
    if (slot >= 0) this.remember(workerId, dpRank, slot);
    return slot;
  }

  /** Slot of a worker rank, allocating one when it has none. */
  acquire(workerId: bigint, dpRank: number): number {
    const found = this.find(workerId, dpRank);
    if (found >= 0) return found;
    const slot = this.freeSlots.pop() ?? this.keys.length;
    let ranks = this.byWorker.get(workerId);
    if (!ranks) this.byWorker.set(workerId, (ranks = new Map()));
    ranks.set(dpRank, slot);
    this.keys[slot] = workerRankKey(workerId, dpRank);
    this.ranks[slot] = { workerId, dpRank };
    this.remember(workerId, dpRank, slot);
    return slot;
  }

  release(slot: number): void {
    const rank = this.ranks[slot];
    if (!rank) return;
    const ranks = this.byWorker.get(rank.workerId)!;
    ranks.delete(rank.dpRank);
    if (ranks.size === 0) this.byWorker.delete(rank.workerId);
    this.ranks[slot] = undefined;
    this.freeSlots.push(slot);
    if (this.lastSlot === slot) this.remember(-1n, -1, -1);
  }

  /** Slots of every rank of a worker. */
  slotsOf(workerId: bigint): number[] {
    return [...(this.byWorker.get(workerId)?.values() ?? [])];
  }

  /** Every allocated slot, ascending. */
  allocated(): number[] {
    const out: number[] = [];
    this.ranks.forEach((rank, slot) => {
      if (rank) out.push(slot);
    });
    return out;
  }

  key(slot: number): WorkerRankKey {
    return this.keys[slot]!;
  }

  rank(slot: number): WorkerRank {
    return this.ranks[slot]!;
  }

  private remember(workerId: bigint, dpRank: number, slot: number): void {
    this.lastWorkerId = workerId;
    this.lastDpRank = dpRank;
    this.lastSlot = slot;
  }
}
