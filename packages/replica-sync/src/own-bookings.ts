import type { BookingChange } from "./types.js";

/**
 * This replica's live bookings, followed from the changes it publishes: what it re-announces to a peer
 * that (re)appears, so that peer's load view holds them again.
 */
export class OwnBookings {
  private readonly live = new Map<
    string,
    { add: BookingChange; prefillDone?: BookingChange; output?: BookingChange }
  >();

  get size(): number {
    return this.live.size;
  }

  track(change: BookingChange): void {
    switch (change.data.type) {
      case "add_request":
        this.live.set(change.requestId, { add: change });
        break;
      case "mark_prefill_completed": {
        const entry = this.live.get(change.requestId);
        if (entry !== undefined) entry.prefillDone = change;
        break;
      }
      case "output": {
        const entry = this.live.get(change.requestId);
        if (entry !== undefined) entry.output = change;
        break;
      }
      case "free":
        this.live.delete(change.requestId);
    }
  }

  /**
   * Every live booking as the changes that recreate it: the add, then prefill completion if it happened,
   * then the latest output growth.
   */
  snapshot(): BookingChange[] {
    const out: BookingChange[] = [];
    for (const { add, prefillDone, output } of this.live.values()) {
      out.push(add);
      if (prefillDone !== undefined) out.push(prefillDone);
      if (output !== undefined) out.push(output);
    }
    return out;
  }
}
