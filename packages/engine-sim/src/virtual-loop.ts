import { VirtualClock } from "./clock.js";
import type { Engine } from "./engine.js";
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
  private readonly keys: number[] = [];
  /** Heap of indices into `engines`. */
  private readonly heap: number[] = [];
  private readonly position: number[] = [];
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
      this.keys.push(engine.nextEventTime());
      this.position.push(this.heap.length);
      this.heap.push(index);
      this.up(this.heap.length - 1);
      engine.setWakeListener((e) => this.refresh(e));
    }
  }

  /** The loop's time. */
  now(): TimeMs {
    return this.clock.now();
  }

  /** Time of the earliest pending event over all engines (Infinity when none). */
  nextEventTime(): TimeMs {
    return this.heap.length === 0 ? Infinity : this.keys[this.heap[0]!]!;
  }

  /** Processes the earliest event; false when there is none. */
  step(): boolean {
    if (this.heap.length === 0) return false;
    const index = this.heap[0]!;
    const at = this.keys[index]!;
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
    const old = this.keys[index]!;
    if (key === old) return;
    this.keys[index] = key;
    const at = this.position[index]!;
    if (key < old) this.up(at);
    else this.down(at);
  }

  private less(a: number, b: number): boolean {
    return this.keys[this.heap[a]!]! < this.keys[this.heap[b]!]!;
  }

  private swap(a: number, b: number): void {
    const ia = this.heap[a]!;
    const ib = this.heap[b]!;
    this.heap[a] = ib;
    this.heap[b] = ia;
    this.position[ib] = a;
    this.position[ia] = b;
  }

  private up(at: number): void {
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (!this.less(at, parent)) return;
      this.swap(at, parent);
      at = parent;
    }
  }

  private down(at: number): void {
    const n = this.heap.length;
    for (;;) {
      const left = 2 * at + 1;
      if (left >= n) return;
      const right = left + 1;
      const child = right < n && this.less(right, left) ? right : left;
      if (!this.less(child, at)) return;
      this.swap(child, at);
      at = child;
    }
  }
}
