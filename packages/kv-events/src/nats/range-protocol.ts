import type { RouterEvent } from "@dynamo/kv-indexer";
import type { RingBuffer } from "../ring-buffer.js";
import {
  parseLosslessJson,
  routerEventFromJsonValue,
  routerEventToJsonValue,
  stringifyLosslessJson,
} from "./json-codec.js";

/**
 * Event-range queries between a router and a worker rank's bridge (Dynamo's worker local indexer).
 * Request: JSON `{"start_event_id": n | null, "end_event_id": n | null}` (inclusive; null start = full
 * dump, null end = up to the newest). Reply: one or more chunks
 * `{"kind": "events" | "tree_dump" | "too_new", "last_event_id": n | null, "events": [RouterEvent JSON…], "final": bool}`
 * sent to the request's reply subject in order; the last chunk has `"final": true`.
 */

export interface RangeQuery {
  readonly startEventId: bigint | null;
  readonly endEventId: bigint | null;
}

export type RangeAnswerKind = "events" | "tree_dump" | "too_new";

export interface RangeAnswer {
  readonly kind: RangeAnswerKind;
  /** Newest event id of the rank when answered (the dump reflects state up to it); null when none yet. */
  readonly lastEventId: bigint | null;
  readonly events: readonly RouterEvent[];
}

/** The request or reply is not in the protocol's shape. */
export class RangeProtocolError extends Error {
  override readonly name = "RangeProtocolError";
}

function optionalU64(value: unknown, field: string): bigint | null {
  if (value === null || value === undefined) return null;
  if (typeof value !== "bigint" || value < 0n)
    throw new RangeProtocolError(`${field}: expected an unsigned integer or null`);
  return value;
}

function asRecord(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = parseLosslessJson(text);
  } catch (err) {
    throw new RangeProtocolError(`malformed JSON: ${(err as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new RangeProtocolError("expected a JSON object");
  return value as Record<string, unknown>;
}

export function encodeRangeQuery(query: RangeQuery): string {
  return stringifyLosslessJson({ start_event_id: query.startEventId, end_event_id: query.endEventId });
}

export function decodeRangeQuery(text: string): RangeQuery {
  const obj = asRecord(text);
  return {
    startEventId: optionalU64(obj["start_event_id"], "start_event_id"),
    endEventId: optionalU64(obj["end_event_id"], "end_event_id"),
  };
}

/**
 * Answers a query from a rank's ring buffer of recent events (ascending ids): `events` when the buffer
 * still holds `start`, or when its oldest event is a `cleared` (nothing before a clear matters, so the
 * events from it on are the whole state; the answer then starts above `start`); `too_new` when `start`
 * is past the newest id; otherwise (or with no start) the full `tree_dump`.
 */
export function answerRangeQuery(
  buffer: RingBuffer<RouterEvent>,
  lastEventId: bigint | null,
  query: RangeQuery,
  dump: () => RouterEvent[],
): RangeAnswer {
  const start = query.startEventId;
  if (start === null) return { kind: "tree_dump", lastEventId, events: dump() };
  if (lastEventId === null || start > lastEventId) return { kind: "too_new", lastEventId, events: [] };
  const oldest = buffer.at(0);
  if (oldest === undefined || (oldest.eventId > start && oldest.data.type !== "cleared"))
    return { kind: "tree_dump", lastEventId, events: dump() };
  const end = query.endEventId ?? lastEventId;
  const events: RouterEvent[] = [];
  for (let i = buffer.lowerBound((e) => e.eventId >= start); i < buffer.length; i++) {
    const event = buffer.at(i)!;
    if (event.eventId > end) break;
    events.push(event);
  }
  return { kind: "events", lastEventId, events };
}

/** Splits an answer into reply chunks of at most about `maxBytes` each (at least one event per chunk). */
export function encodeRangeAnswer(answer: RangeAnswer, maxBytes: number): string[] {
  const head = (final: boolean) =>
    `{"kind":"${answer.kind}","last_event_id":${answer.lastEventId ?? "null"},"final":${final},"events":[`;
  const chunks: string[] = [];
  let parts: string[] = [];
  let size = 0;
  for (const event of answer.events) {
    const text = stringifyLosslessJson(routerEventToJsonValue(event));
    if (parts.length > 0 && size + text.length > maxBytes) {
      chunks.push(`${head(false)}${parts.join(",")}]}`);
      parts = [];
      size = 0;
    }
    parts.push(text);
    size += text.length + 1;
  }
  chunks.push(`${head(true)}${parts.join(",")}]}`);
  return chunks;
}

export interface RangeAnswerChunk extends RangeAnswer {
  readonly final: boolean;
}

export function decodeRangeAnswerChunk(text: string): RangeAnswerChunk {
  const obj = asRecord(text);
  const kind = obj["kind"];
  if (kind !== "events" && kind !== "tree_dump" && kind !== "too_new")
    throw new RangeProtocolError(`unknown kind ${JSON.stringify(kind)}`);
  const events = obj["events"];
  if (!Array.isArray(events)) throw new RangeProtocolError("events: expected an array");
  return {
    kind,
    lastEventId: optionalU64(obj["last_event_id"], "last_event_id"),
    final: obj["final"] === true,
    events: events.map(routerEventFromJsonValue),
  };
}
