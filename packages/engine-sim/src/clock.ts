import type { Clock, TimeMs } from "./types.js";

/** Wall-clock milliseconds since the epoch, with sub-millisecond resolution. */
export const systemClock: Clock = {
  now: () => performance.timeOrigin + performance.now(),
};

/** A clock that only moves when told to: the time of an offline simulation. */
export class VirtualClock implements Clock {
  private time: TimeMs;

  constructor(start: TimeMs = 0) {
    this.time = start;
  }

  now(): TimeMs {
    return this.time;
  }

  /** Moves the clock to `time`; moving it backwards is an error. */
  set(time: TimeMs): void {
    if (!(time >= this.time)) throw new RangeError(`virtual clock cannot go back from ${this.time} to ${time}`);
    this.time = time;
  }
}
