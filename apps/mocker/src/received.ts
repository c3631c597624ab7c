import type { ReceivedRequest } from "./types.js";

/** The last `capacity` requests, oldest first. */
export class ReceivedLog {
  private readonly entries: ReceivedRequest[] = [];

  constructor(private readonly capacity: number) {}

  add(request: ReceivedRequest): void {
    this.entries.push(request);
    if (this.entries.length > this.capacity) this.entries.splice(0, this.entries.length - this.capacity);
  }

  /** A snapshot (later requests do not change it). */
  list(): ReadonlyArray<ReceivedRequest> {
    return this.entries.slice();
  }
}
