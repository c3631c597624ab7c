/**
 * The router queue: while every candidate worker is over the queue threshold, requests wait here and
 * are released, best key first, as load frees. Pure bookkeeping: the router decides when a request may
 * go and routes it; the queue orders, bounds and times out the waiting requests.
 */

export type QueuePolicy = "fcfs" | "wspt" | "lcfs";

export interface QueueEntryInput {
  /** Higher goes first (the request's `priority`, default 0). */
  readonly priority: number;
  /** Prompt length in tokens (`wspt` favours short prompts). */
  readonly isl: number;
}

interface Entry<T> {
  readonly item: T;
  readonly key: number;
  readonly seq: number;
  readonly arrived: number;
  readonly release: (outcome: QueueOutcome<T>) => void;
  timer?: ReturnType<typeof setTimeout>;
  done: boolean;
}

/** How a queued request left the queue. */
export type QueueOutcome<T> =
  | { readonly kind: "released"; readonly item: T; readonly waitedMs: number }
  | { readonly kind: "timeout"; readonly waitedMs: number }
  | { readonly kind: "cancelled" };

/**
 * Priority key of a request (higher = sooner):
 * - `fcfs`: `priority − arrival offset (s)`: first come first served, a priority of 1 jumps one second;
 * - `wspt`: weighted shortest processing time, `(1 + priority) / isl`: best mean time to first token;
 * - `lcfs`: `priority + arrival offset (s)`: newest first (for experiments).
 */
export function queueKey(policy: QueuePolicy, input: QueueEntryInput, arrivalOffsetSecs: number): number {
  switch (policy) {
    case "fcfs":
      return input.priority - arrivalOffsetSecs;
    case "wspt":
      return (1 + Math.max(0, input.priority)) / Math.max(1, input.isl);
    case "lcfs":
      return input.priority + arrivalOffsetSecs;
  }
}

export class RouterQueue<T> {
  private readonly entries: Entry<T>[] = [];
  private readonly epoch: number;
  private seq = 0;

  constructor(
    readonly policy: QueuePolicy,
    /** At most this many waiting requests; more are refused at once. */
    readonly maxDepth: number,
    /** A request waiting longer fails. */
    readonly timeoutMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.epoch = now();
  }

  get depth(): number {
    return this.entries.length;
  }

  /**
   * Queues an item; false when the queue is full. `release` is called exactly once: released (by
   * `releaseWhile`), timed out, or cancelled through `signal`.
   */
  push(item: T, input: QueueEntryInput, release: (outcome: QueueOutcome<T>) => void, signal?: AbortSignal): boolean {
    if (this.entries.length >= this.maxDepth) return false;
    const arrived = this.now();
    const entry: Entry<T> = {
      item,
      key: queueKey(this.policy, input, (arrived - this.epoch) / 1000),
      seq: this.seq++,
      arrived,
      release,
      done: false,
    };
    this.entries.push(entry);
    entry.timer = setTimeout(
      () => this.finish(entry, { kind: "timeout", waitedMs: this.now() - arrived }),
      this.timeoutMs,
    );
    entry.timer.unref?.();
    if (signal) {
      const onAbort = () => this.finish(entry, { kind: "cancelled" });
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
    }
    return true;
  }

  /**
   * Releases items best key first (ties: arrival order) while `canGo(item)` says the best one may go.
   * Returns how many were released.
   */
  releaseWhile(canGo: (item: T) => boolean): number {
    let released = 0;
    for (;;) {
      const best = this.best();
      if (best < 0) return released;
      const entry = this.entries[best]!;
      if (!canGo(entry.item)) return released;
      this.finish(entry, { kind: "released", item: entry.item, waitedMs: this.now() - entry.arrived });
      released++;
    }
  }

  /** Fails every waiting item as timed out (the router is going away). */
  clear(): void {
    for (const entry of [...this.entries]) this.finish(entry, { kind: "timeout", waitedMs: 0 });
  }

  private best(): number {
    let best = -1;
    for (let i = 0; i < this.entries.length; i++) {
      const e = this.entries[i]!;
      const b = best >= 0 ? this.entries[best]! : undefined;
      if (!b || e.key > b.key || (e.key === b.key && e.seq < b.seq)) best = i;
    }
    return best;
  }

  private finish(entry: Entry<T>, outcome: QueueOutcome<T>): void {
    if (entry.done) return;
    entry.done = true;
    clearTimeout(entry.timer);
    const at = this.entries.indexOf(entry);
    if (at >= 0) this.entries.splice(at, 1);
    entry.release(outcome);
  }
}
