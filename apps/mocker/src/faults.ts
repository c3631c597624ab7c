import type { InjectedFailure } from "./types.js";

/** Faults queued by tests: failures answered instead of the next model requests, connections dropped. */
export class Faults {
  private failure: { status: number; body: unknown; remaining: number } | undefined;
  private drops = 0;

  failNext(failure: InjectedFailure): void {
    const count = failure.count ?? 1;
    if (!Number.isInteger(failure.status) || failure.status < 100 || failure.status > 599)
      throw new RangeError(`status must be an HTTP status (100-599), got ${failure.status}`);
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`count must be a positive integer, got ${count}`);
    this.failure = { status: failure.status, body: failure.body, remaining: count };
  }

  dropNextConnection(): void {
    this.drops++;
  }

  /** Whether this request's connection is to be dropped (consumes one). */
  takeDrop(): boolean {
    if (this.drops === 0) return false;
    this.drops--;
    return true;
  }

  /** The failure this request is to get, if any (consumes one). */
  takeFailure(): { status: number; body: unknown } | undefined {
    const failure = this.failure;
    if (failure === undefined) return undefined;
    if (--failure.remaining === 0) this.failure = undefined;
    return { status: failure.status, body: failure.body };
  }
}
