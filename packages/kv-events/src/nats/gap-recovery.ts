import type { RouterEvent } from "@dynamo/kv-indexer";
import type { RangeAnswer } from "./range-protocol.js";

/**
 * The decisions of gap recovery on the NATS event plane, apart from the connection: what a live event
 * of a rank asks for, whether a bridge's answer covers a missing range, and what an answer means. The
 * subscriber (`subscriber.ts`) does the I/O around them. Event ids are per worker rank.
 */

/** What a live event asks for, given the last id applied for its rank (not recovering). */
export type Admission =
  /** In order (or a duplicate, which the index drops): apply it. */
  | { readonly kind: "apply" }
  /** A `cleared` past a gap: nothing before it matters, continue from it. */
  | { readonly kind: "restart" }
  /** A gap: hold the event and recover `[from, to]` first. */
  | { readonly kind: "recover"; readonly from: bigint; readonly to: bigint };

export function admission(event: RouterEvent, lastEventId: bigint | undefined): Admission {
  const expected = lastEventId === undefined ? 0n : lastEventId + 1n;
  if (event.eventId <= expected) return { kind: "apply" };
  if (event.data.type === "cleared") return { kind: "restart" };
  return { kind: "recover", from: expected, to: event.eventId - 1n };
}

/**
 * Whether `events` hold every id of `[from, to]`, or start with a `cleared` after `from` and hold every
 * id from it to `to` (nothing before a clear matters). With `to` null: at least one event, without holes.
 */
export function covers(events: readonly RouterEvent[], from: bigint, to: bigint | null): boolean {
  const first = events[0];
  let next = first !== undefined && first.eventId > from && first.data.type === "cleared" ? first.eventId : from;
  for (const e of events) {
    if (e.eventId === next) next++;
    else if (e.eventId > next) return false;
  }
  return to === null ? events.length > 0 : next > to;
}

/** What a bridge's answer to the query `[start, to]` (`start` null: the whole state) means. */
export type AnswerVerdict =
  /** A dump: it replaces the rank's state. */
  | "replace_with_dump"
  /** The missing events: apply them. */
  | "apply_events"
  /** Asked for anything after `start - 1`, and nothing is newer. */
  | "nothing_missing"
  /** The bridge's history does not match ours (it restarted, or its buffer rolled over): ask for its dump. */
  | "ask_for_dump";

export function judgeAnswer(answer: RangeAnswer, start: bigint | null, to: bigint | null): AnswerVerdict {
  if (answer.kind === "tree_dump") return "replace_with_dump";
  if (answer.kind === "events" && start !== null && covers(answer.events, start, to)) return "apply_events";
  if (
    answer.kind === "too_new" &&
    start !== null &&
    to === null &&
    answer.lastEventId !== null &&
    answer.lastEventId + 1n === start
  )
    return "nothing_missing";
  return "ask_for_dump";
}

/**
 * The recovered events to apply for `[start, to]` (`to` null: all from `start`), and the id the rank's
 * sequence restarts at when the answer opens with a `cleared` above `start` (older ids are then not
 * missing, they are void).
 */
export function eventsToApply(
  events: readonly RouterEvent[],
  start: bigint,
  to: bigint | null,
): { readonly restartAt: bigint | undefined; readonly events: RouterEvent[] } {
  const first = events[0];
  const restartAt =
    first !== undefined && first.eventId > start && first.data.type === "cleared" ? first.eventId : undefined;
  return {
    restartAt,
    events: events.filter((e) => e.eventId >= start && (to === null || e.eventId <= to)),
  };
}
