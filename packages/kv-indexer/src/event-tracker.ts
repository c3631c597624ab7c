/**
 * Per-slot event-id tracking: accepts the next id, reports gaps, remembers the missing ranges so that
 * recovered events can still be applied later (once each), and rejects duplicates and stale ids.
 */

/** Missing ranges remembered per worker rank; beyond this the oldest are forgotten. */
export const MAX_MISSING_RANGES = 1024;

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

interface MissingRange {
  from: bigint;
  to: bigint;
}

export type GapListener = (slot: number, from: bigint, to: bigint) => void;

export class EventIdTracker {
  // The last id per slot as a double while it is exact (the common case: no bigint arithmetic per
  // event), otherwise NaN here and the value in `lastBig`. NaN and no `lastBig` = nothing seen yet.
  private lastNum = new Float64Array(16).fill(NaN);
  private readonly lastBig: (bigint | undefined)[] = [];
  private readonly missing: (MissingRange[] | undefined)[] = [];

  constructor(private readonly onGap: GapListener) {}

  /** True when the event must be applied; false for a duplicate or stale id. */
  accept(slot: number, id: bigint): boolean {
    if (slot >= this.lastNum.length) this.widen(slot);
    const last = this.lastNum[slot]!;
    // Doubles are exact up to 2^53 - 1, and a larger id never converts to a number at or below it.
    // NaN (nothing seen, or a last id beyond 2^53) never equals anything: those take the slow path.
    const next = Number(id);
    if (next === last + 1 && next <= Number.MAX_SAFE_INTEGER) {
      this.lastNum[slot] = next;
      return true;
    }
    return this.acceptSlow(slot, id);
  }

  /** Last id accepted in order (the highest seen), or undefined. */
  lastId(slot: number): bigint | undefined {
    const big = this.lastBig[slot];
    if (big !== undefined) return big;
    const last = this.lastNum[slot];
    return last === undefined || Number.isNaN(last) ? undefined : BigInt(last);
  }

  /**
   * Forgets the slot's missing ranges (its last id stays): a `cleared` event is a barrier, so events
   * from before it that arrive late must not bring blocks back.
   */
  forgetMissing(slot: number): void {
    this.missing[slot] = undefined;
  }

  /** Forgets the slot's history; with `nextExpected`, that id will be accepted without a gap. */
  reset(slot: number, nextExpected?: bigint): void {
    if (slot >= this.lastNum.length) this.widen(slot);
    this.missing[slot] = undefined;
    this.setLast(slot, undefined);
    if (nextExpected !== undefined && nextExpected > 0n) this.setLast(slot, nextExpected - 1n);
  }

  private acceptSlow(slot: number, id: bigint): boolean {
    const last = this.lastId(slot);
    if (last === undefined) {
      this.setLast(slot, id);
      if (id > 0n) this.gap(slot, 0n, id - 1n);
      return true;
    }
    if (id > last) {
      this.setLast(slot, id);
      if (id > last + 1n) this.gap(slot, last + 1n, id - 1n);
      return true;
    }
    return this.takeMissing(slot, id);
  }

  private gap(slot: number, from: bigint, to: bigint): void {
    let ranges = this.missing[slot];
    if (!ranges) this.missing[slot] = ranges = [];
    ranges.push({ from, to });
    if (ranges.length > MAX_MISSING_RANGES) ranges.shift();
    this.onGap(slot, from, to);
  }

  /** Accepts an id inside a missing range once, splitting the range around it. */
  private takeMissing(slot: number, id: bigint): boolean {
    const ranges = this.missing[slot];
    if (!ranges) return false;
    const i = ranges.findIndex((r) => r.from <= id && id <= r.to);
    if (i < 0) return false;
    const { from, to } = ranges[i]!;
    const rest: MissingRange[] = [];
    if (from < id) rest.push({ from, to: id - 1n });
    if (id < to) rest.push({ from: id + 1n, to });
    ranges.splice(i, 1, ...rest);
    if (ranges.length === 0) this.missing[slot] = undefined;
    return true;
  }

  private setLast(slot: number, id: bigint | undefined): void {
    if (id === undefined || id <= SAFE) {
      this.lastNum[slot] = id === undefined ? NaN : Number(id);
      this.lastBig[slot] = undefined;
    } else {
      this.lastNum[slot] = NaN;
      this.lastBig[slot] = id;
    }
  }

  private widen(slot: number): void {
    const wider = new Float64Array(Math.max(slot + 1, this.lastNum.length * 2)).fill(NaN);
    wider.set(this.lastNum);
    this.lastNum = wider;
  }
}
