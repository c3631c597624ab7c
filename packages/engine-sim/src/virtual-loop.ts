import { VirtualClock } from "./clock.js";
import type { Engine } from "./engine.js";
import { IndexedHeap } from "./indexed-heap.js";
import type { TimeMs } from "./types.js";

/**
 * Drives many engines in one virtual-time event loop: events of all engines are processed in time
 * order (an indexed min-heap on each engine's `nextEventTime()`), the shared clock reading each event's
 * time while it is processed. Typical offline use: for each arrival, `advanceTo(arrival)` then
 * `addRequest` on the engine a policy picks; `runUntilIdle()` at the end.
 */
export class VirtualLoop {
  readonly clock: VirtualClock;
  private readonly engines: Engine[] = [];
  /** Indices into `engines` by their next event time. */
  private readonly heap = new IndexedHeap();
  private readonly indexOf = new Map<Engine, number>();

  constructor(clock: VirtualClock = new VirtualClock()) {
    this.clock = clock;
  }

  /** Adds engines built on this loop's clock. */
  add(...engines: Engine[]): void {
    for (const engine of engines) {
      if (engine.clock !== this.clock) throw new Error("engine does not run on this loop's clock");
      if (this.indexOf.has(engine)) continue;
      const index = this.engines.length;
      this.engines.push(engine);
      this.indexOf.set(engine, index);
      this.heap.set(index, engine.nextEventTime());
      engine.setWakeListener((e) => this.refresh(e));
    }
  }

  /** The loop's time. */
  now(): TimeMs {
    return this.clock.now();
  }

  /** Time of the earliest pending event over all engines (Infinity when none). */
  nextEventTime(): TimeMs {
    const first = this.heap.peek();
    return first < 0 ? Infinity : this.heap.keyOf(first);
  }

  /** Processes the earliest event; false when there is none. */
  step(): boolean {
    const index = this.heap.peek();
    if (index < 0) return false;
    const at = this.heap.keyOf(index);
    if (at === Infinity) return false;
    this.clock.set(Math.max(at, this.clock.now()));
    const engine = this.engines[index]!;
    try {
      engine.runNext();
    } finally {
      this.refresh(engine);
    }
    return true;
  }

  /** Processes every event strictly before `t`, then sets the clock to `t`. */
  advanceTo(t: TimeMs): void {
    while (this.nextEventTime() < t) this.step();
    if (t > this.clock.now()) this.clock.set(t);
  }

  /** Processes events until no engine has any left (or the clock would pass `until`). */
  runUntilIdle(until: TimeMs = Infinity): void {
    for (;;) {
      const next = this.nextEventTime();
      if (next === Infinity || next > until) return;
      this.step();
    }
  }

  private refresh(engine: Engine): void {
    const index = this.indexOf.get(engine);
    if (index === undefined) return;
    const key = engine.nextEventTime();
    if (key !== this.heap.keyOf(index)) this.heap.set(index, key);
  }
}
