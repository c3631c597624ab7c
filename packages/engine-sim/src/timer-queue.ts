import type { Sequence } from "./sequence.js";
import type { TimeMs } from "./types.js";

/**
 * Sequences waiting for a moment, earliest first: a `send` sequence releasing its held blocks, a
 * `receive` sequence whose transferred KV arrives. Few at a time, so a sorted array.
 */
export class TimerQueue {
  private readonly queue: Sequence[] = [];

  /** When the earliest timer fires (Infinity when none). */
  get next(): TimeMs {
    return this.queue.length > 0 ? this.queue[0]!.timerAt : Infinity;
  }

  add(seq: Sequence, at: TimeMs): void {
    seq.timerAt = at;
    let i = this.queue.length;
    while (i > 0 && this.queue[i - 1]!.timerAt > at) i--;
    this.queue.splice(i, 0, seq);
  }

  delete(seq: Sequence): void {
    const at = this.queue.indexOf(seq);
    if (at >= 0) this.queue.splice(at, 1);
  }

  /** Removes and returns the sequences whose timer fires at or before `t`. */
  due(t: TimeMs): Sequence[] {
    let n = 0;
    while (n < this.queue.length && this.queue[n]!.timerAt <= t) n++;
    return this.queue.splice(0, n);
  }
}
