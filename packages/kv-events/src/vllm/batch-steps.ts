import { Decoder } from "@msgpack/msgpack";
import {
  MAX_EVENTS_PER_BATCH,
  VllmDecodeError,
  batchRank,
  decodeEventValue,
  describe,
  isRecord,
  type DecodedVllmBatch,
  type VllmKvEvent,
} from "./codec.js";

/**
 * Step-wise decoding of a `KVEventBatch`, for spreading a large batch over several turns of the event
 * loop: the batch's frame (timestamp, rank) comes first, found from the msgpack headers and a
 * non-allocating walk over the events, then the events one at a time.
 */

/** Payloads whose events cannot be located from their headers are decoded in one piece, up to this size. */
export const MAX_UNFRAMED_PAYLOAD_BYTES = 256 * 1024;

/** Events walked over per step while looking for what follows them. */
const SKIP_PER_STEP = 256;

/** One step of reading a batch: progress only, the frame (once, first), or one event. */
export type BatchStep =
  | { readonly kind: "progress" }
  | { readonly kind: "frame"; readonly ts: number; readonly dataParallelRank: number | null }
  | { readonly kind: "event"; readonly event: VllmKvEvent };

/** What a batch left out: events of unknown type, invalid events (with the first reason). */
export interface BatchOmissions {
  readonly unknownEvents: number;
  readonly invalidEvents: number;
  readonly firstInvalidReason?: string;
}

const PROGRESS: BatchStep = { kind: "progress" };

/**
 * Decodes one `KVEventBatch` payload. Throws `VllmDecodeError` when the payload is not a batch;
 * individual bad events are skipped and counted in the result.
 */
export function decodeVllmEventBatch(payload: Uint8Array): DecodedVllmBatch {
  const steps = readVllmEventBatch(payload);
  const events: VllmKvEvent[] = [];
  let ts = 0;
  let dataParallelRank: number | null = null;
  for (;;) {
    const step = steps.next();
    if (step.done) return { ts, events, dataParallelRank, ...step.value };
    if (step.value.kind === "frame") ({ ts, dataParallelRank } = step.value);
    else if (step.value.kind === "event") events.push(step.value.event);
  }
}

/**
 * Reads one `KVEventBatch` payload step by step: `frame` first, then each valid event in order (with
 * `progress` steps in between when there is work without an event to show); returns what was left out.
 * `next()` throws `VllmDecodeError` when the payload is not a batch, before the frame: the payload's
 * structure is checked whole before any event comes out.
 */
export function* readVllmEventBatch(payload: Uint8Array): Generator<BatchStep, BatchOmissions, void> {
  const declared = declaredEventCount(payload);
  if (declared !== undefined && declared > MAX_EVENTS_PER_BATCH)
    throw new VllmDecodeError(`batch of ${declared} events: at most ${MAX_EVENTS_PER_BATCH} are accepted`);
  const omissions = new Omissions();
  const frame = batchFrame(payload);
  if (frame === undefined) {
    if (payload.byteLength > MAX_UNFRAMED_PAYLOAD_BYTES)
      throw new VllmDecodeError(
        `a payload of ${payload.byteLength} bytes whose events cannot be located from its headers ` +
          `(at most ${MAX_UNFRAMED_PAYLOAD_BYTES} bytes are decoded whole)`,
      );
    const { ts, rawEvents, rank } = wholeBatch(payload);
    yield frameStep(ts, rank);
    if (rawEvents.length > MAX_EVENTS_PER_BATCH) omissions.dropBeyondCap(rawEvents.length);
    for (let i = 0; i < Math.min(rawEvents.length, MAX_EVENTS_PER_BATCH); i++) yield omissions.step(rawEvents[i]);
    return omissions.result();
  }
  // Walk over the events (checking their structure) to what follows them: the rank may be there.
  let at = frame.eventsAt;
  for (let left = frame.count; left > 0; left -= SKIP_PER_STEP) {
    const next = skipValues(payload, at, Math.min(left, SKIP_PER_STEP));
    if (next === undefined)
      throw new VllmDecodeError("not msgpack: the payload ends inside the batch or holds an invalid byte");
    at = next;
    yield PROGRESS;
  }
  let { ts, rank } = frame;
  const tail = new Decoder({ useBigInt64: true }).decodeMulti(payload.subarray(at));
  if (frame.form === "array") {
    if (frame.after >= 1) rank = nextItem(tail);
  } else {
    for (let k = 0; k < frame.after; k++) {
      const key = nextItem(tail);
      const value = nextItem(tail);
      if (key === "ts") ts = value;
      else if (key === "data_parallel_rank") rank = value;
    }
  }
  yield frameStep(ts, rank);
  const items = new Decoder({ useBigInt64: true }).decodeMulti(payload.subarray(frame.eventsAt, at));
  for (let i = 0; i < frame.count; i++) yield omissions.step(nextItem(items));
  return omissions.result();
}

function frameStep(ts: unknown, rank: unknown): BatchStep {
  const dataParallelRank = batchRank(rank);
  if (typeof dataParallelRank === "object" && dataParallelRank !== null)
    throw new VllmDecodeError(dataParallelRank.invalid);
  return { kind: "frame", ts: typeof ts === "number" ? ts : typeof ts === "bigint" ? Number(ts) : 0, dataParallelRank };
}

/** Counts of what was left out of a batch, and the step for one raw event. */
class Omissions {
  private unknownEvents = 0;
  private invalidEvents = 0;
  private firstInvalidReason: string | undefined;

  step(raw: unknown): BatchStep {
    const event = decodeEventValue(raw);
    if (event === "unknown") this.unknownEvents++;
    else if ("invalid" in event) {
      this.invalidEvents++;
      this.firstInvalidReason ??= event.invalid;
    } else return { kind: "event", event };
    return PROGRESS;
  }

  dropBeyondCap(count: number): void {
    this.invalidEvents += count - MAX_EVENTS_PER_BATCH;
    this.firstInvalidReason ??= `batch of ${count} events: the ${count - MAX_EVENTS_PER_BATCH} beyond ${MAX_EVENTS_PER_BATCH} are dropped`;
  }

  result(): BatchOmissions {
    return {
      unknownEvents: this.unknownEvents,
      invalidEvents: this.invalidEvents,
      ...(this.firstInvalidReason === undefined ? {} : { firstInvalidReason: this.firstInvalidReason }),
    };
  }
}

function nextItem(items: Generator<unknown, void, unknown>): unknown {
  let step: IteratorResult<unknown, void>;
  try {
    step = items.next();
  } catch (err) {
    throw new VllmDecodeError(`not msgpack: ${(err as Error).message}`);
  }
  if (step.done) throw new VllmDecodeError("not msgpack: the payload ends inside the batch");
  return step.value;
}

/**
 * Skips `n` msgpack values from `at` without decoding them: the position after them, or undefined when
 * the bytes end first or hold an invalid type byte. Iterative (any nesting depth), O(bytes walked).
 */
function skipValues(p: Uint8Array, at: number, n: number): number | undefined {
  let pending = n;
  while (pending > 0) {
    const t = p[at];
    if (t === undefined) return undefined;
    pending--;
    if (t <= 0x7f || t >= 0xe0 || t === 0xc0 || t === 0xc2 || t === 0xc3) at += 1;
    else if (t <= 0x8f) [pending, at] = [pending + 2 * (t - 0x80), at + 1];
    else if (t <= 0x9f) [pending, at] = [pending + (t - 0x90), at + 1];
    else if (t <= 0xbf) at += 1 + (t - 0xa0);
    else {
      const size = SIZED[t];
      if (size !== undefined) at += size;
      else {
        const width = LENGTH_WIDTH[t];
        if (width === undefined || at + width >= p.length) return undefined;
        let length = 0;
        for (let i = 1; i <= width; i++) length = length * 256 + p[at + i]!;
        at += 1 + width;
        if (t === 0xdc || t === 0xdd) pending += length;
        else if (t === 0xde || t === 0xdf) pending += 2 * length;
        else at += length + (t >= 0xc7 && t <= 0xc9 ? 1 : 0); // bin/str: the bytes; ext: a type byte too
      }
    }
    if (at > p.length) return undefined;
  }
  return at;
}

/** Total size of fixed-size msgpack values by type byte (float, int, fixext). */
const SIZED: Record<number, number> = {
  0xca: 5,
  0xcb: 9,
  0xcc: 2,
  0xcd: 3,
  0xce: 5,
  0xcf: 9,
  0xd0: 2,
  0xd1: 3,
  0xd2: 5,
  0xd3: 9,
  0xd4: 3,
  0xd5: 4,
  0xd6: 6,
  0xd7: 10,
  0xd8: 18,
};

/** Width of the length field of variable-size msgpack values by type byte (bin, ext, str, array, map). */
const LENGTH_WIDTH: Record<number, number> = {
  0xc4: 1,
  0xc5: 2,
  0xc6: 4,
  0xc7: 1,
  0xc8: 2,
  0xc9: 4,
  0xd9: 1,
  0xda: 2,
  0xdb: 4,
  0xdc: 2,
  0xdd: 4,
  0xde: 2,
  0xdf: 4,
};

/** A batch decoded in one piece (shapes the frame reader does not know). */
function wholeBatch(payload: Uint8Array): { ts: unknown; rawEvents: unknown[]; rank: unknown } {
  let root: unknown;
  try {
    root = new Decoder({ useBigInt64: true }).decode(payload);
  } catch (err) {
    throw new VllmDecodeError(`not msgpack: ${(err as Error).message}`);
  }
  let ts: unknown;
  let rawEvents: unknown;
  let rank: unknown;
  if (Array.isArray(root)) [ts, rawEvents, rank] = root;
  else if (isRecord(root)) [ts, rawEvents, rank] = [root["ts"], root["events"], root["data_parallel_rank"]];
  else throw new VllmDecodeError(`batch: expected an array or a map, got ${describe(root)}`);
  if (!Array.isArray(rawEvents))
    throw new VllmDecodeError(`batch events: expected an array, got ${describe(rawEvents)}`);
  return { ts, rawEvents, rank };
}

/** Where a batch's events start and what surrounds them, read from the headers. */
interface BatchFrame {
  readonly form: "array" | "map";
  readonly ts: unknown;
  readonly rank: unknown;
  readonly eventsAt: number;
  readonly count: number;
  /** Array elements (array form) or map entries (map form) after the events. */
  readonly after: number;
}

/**
 * The frame of an array-form batch `[ts, events, rank?…]` with a scalar `ts`, or of a map-form batch
 * whose entries before `events` have scalar values; undefined for other shapes.
 */
function batchFrame(p: Uint8Array): BatchFrame | undefined {
  const array = containerHeader(p, 0, 0x90, 0xdc);
  if (array) {
    if (array.count < 2) return undefined;
    const afterTs = skipScalar(p, array.at);
    if (afterTs === undefined) return undefined;
    const events = containerHeader(p, afterTs, 0x90, 0xdc);
    if (!events) return undefined;
    const ts = scalarValue(p, array.at, afterTs);
    return { form: "array", ts, rank: null, eventsAt: events.at, count: events.count, after: array.count - 2 };
  }
  const map = containerHeader(p, 0, 0x80, 0xde);
  if (!map) return undefined;
  let at = map.at;
  let ts: unknown;
  let rank: unknown = null;
  for (let entry = 0; entry < map.count; entry++) {
    const key = stringAt(p, at);
    if (!key) return undefined;
    at = key.end;
    if (key.value === "events") {
      const events = containerHeader(p, at, 0x90, 0xdc);
      if (!events) return undefined;
      return { form: "map", ts, rank, eventsAt: events.at, count: events.count, after: map.count - entry - 1 };
    }
    const next = skipScalar(p, at);
    if (next === undefined) return undefined;
    if (key.value === "ts") ts = scalarValue(p, at, next);
    else if (key.value === "data_parallel_rank") rank = scalarValue(p, at, next);
    at = next;
  }
  return undefined;
}

function scalarValue(p: Uint8Array, from: number, to: number): unknown {
  return new Decoder({ useBigInt64: true }).decode(p.subarray(from, to));
}

/**
 * The number of events a batch declares, read from the msgpack headers without decoding anything:
 * the array form `[ts, events, …]`, or the map form with `events` after scalar entries (`ts`,
 * `data_parallel_rank`). Undefined for other shapes (decoded whole).
 */
export function declaredEventCount(payload: Uint8Array): number | undefined {
  const b0 = payload[0];
  if (b0 === undefined) return undefined;
  const header = containerHeader(payload, 0, 0x90, 0xdc);
  if (header) {
    const afterTs = skipScalar(payload, header.at);
    return afterTs === undefined ? undefined : containerHeader(payload, afterTs, 0x90, 0xdc)?.count;
  }
  const map = containerHeader(payload, 0, 0x80, 0xde);
  if (!map) return undefined;
  let at = map.at;
  for (let entry = 0; entry < map.count; entry++) {
    const key = stringAt(payload, at);
    if (!key) return undefined;
    at = key.end;
    if (key.value === "events") return containerHeader(payload, at, 0x90, 0xdc)?.count;
    const next = skipScalar(payload, at);
    if (next === undefined) return undefined;
    at = next;
  }
  return undefined;
}

/** A fixarray/array16/array32 (or fixmap/map16/map32) header at `at`: its count and where its items start. */
function containerHeader(
  p: Uint8Array,
  at: number,
  fix: number,
  wide16: number,
): { count: number; at: number } | undefined {
  const b = p[at];
  if (b === undefined) return undefined;
  if (b >= fix && b <= fix + 0x0f) return { count: b - fix, at: at + 1 };
  if (b === wide16 && at + 2 < p.length) return { count: (p[at + 1]! << 8) | p[at + 2]!, at: at + 3 };
  if (b === wide16 + 1 && at + 4 < p.length)
    return { count: ((p[at + 1]! << 24) | (p[at + 2]! << 16) | (p[at + 3]! << 8) | p[at + 4]!) >>> 0, at: at + 5 };
  return undefined;
}

/** Skips a nil, boolean, integer or float at `at`; undefined for anything else. */
function skipScalar(p: Uint8Array, at: number): number | undefined {
  const t = p[at];
  if (t === undefined) return undefined;
  if (t <= 0x7f || t >= 0xe0 || t === 0xc0 || t === 0xc2 || t === 0xc3) return at + 1;
  const width: Record<number, number> = {
    0xca: 4,
    0xcb: 8,
    0xcc: 1,
    0xcd: 2,
    0xce: 4,
    0xcf: 8,
    0xd0: 1,
    0xd1: 2,
    0xd2: 4,
    0xd3: 8,
  };
  const w = width[t];
  return w === undefined ? undefined : at + 1 + w;
}

/** A short string (fixstr or str8) at `at`. */
function stringAt(p: Uint8Array, at: number): { value: string; end: number } | undefined {
  const t = p[at];
  if (t === undefined) return undefined;
  let start = at + 1;
  let length: number;
  if (t >= 0xa0 && t <= 0xbf) length = t - 0xa0;
  else if (t === 0xd9 && at + 1 < p.length) {
    length = p[at + 1]!;
    start = at + 2;
  } else return undefined;
  if (start + length > p.length) return undefined;
  return { value: Buffer.from(p.buffer, p.byteOffset + start, length).toString("latin1"), end: start + length };
}
