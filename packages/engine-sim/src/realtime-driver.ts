import { systemClock } from "./clock.js";
import type { Engine } from "./engine.js";
import type { Clock } from "./types.js";

/** The timer functions the driver uses (Node's by default; tests may pass their own). */
export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface RealtimeDriverOptions {
  /** Default the system clock; every engine must run on the same one. */
  readonly clock?: Clock;
  readonly timers?: Timers;
}

const nodeTimers: Timers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/**
 * Runs engines in real time: one timer, armed for the earliest `nextEventTime()` of the engines, runs
 * every event that is due. A late timer catches up (steps keep their modelled times; tokens are
 * delivered as soon as the timer fires), and a request added meanwhile never joins a step that began
 * before it arrived. `stop()` clears the timer and detaches the engines. Callback exceptions surface
 * from the timer unless the engines have `onCallbackError`.
 */
export class RealtimeDriver {
  private readonly engines: Engine[] = [];
  private readonly clock: Clock;
  private readonly timers: Timers;
  private handle: unknown = null;
  private armedFor = Infinity;
  private stopped = false;

  constructor(engines: readonly Engine[], options: RealtimeDriverOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.timers = options.timers ?? nodeTimers;
    for (const engine of engines) this.add(engine);
  }

  /** Drives one more engine (built on the driver's clock). */
  add(engine: Engine): void {
    if (this.stopped) throw new Error("driver stopped");
    if (engine.clock !== this.clock) throw new Error("engine does not run on the driver's clock");
    if (this.engines.includes(engine)) return;
    this.engines.push(engine);
    engine.setWakeListener(() => this.arm());
    this.arm();
  }

  /** Stops driving: clears the timer and detaches every engine (their requests stay where they are). */
  stop(): void {
    this.stopped = true;
    this.disarm();
    for (const engine of this.engines) engine.setWakeListener(null);
  }

  private next(): number {
    let next = Infinity;
    for (const engine of this.engines) next = Math.min(next, engine.nextEventTime());
    return next;
  }

  private arm(): void {
    if (this.stopped) return;
    const next = this.next();
    if (next >= this.armedFor) return;
    this.disarm();
    if (next === Infinity) return;
    this.armedFor = next;
    this.handle = this.timers.setTimeout(() => this.fire(), Math.max(0, next - this.clock.now()));
  }

  private disarm(): void {
    if (this.handle !== null) this.timers.clearTimeout(this.handle);
    this.handle = null;
    this.armedFor = Infinity;
  }

  private fire(): void {
    this.handle = null;
    this.armedFor = Infinity;
    const now = this.clock.now();
    try {
      // Events due at `now` itself are processed too; a later arrival starts its own step.
      for (const engine of this.engines) while (engine.nextEventTime() <= now) engine.runNext();
    } finally {
      this.arm();
    }
  }
}
