import { RouterEvents, type RouterEvent } from "@dynamo/kv-indexer";
import { describe, expect, it } from "vitest";
import {
  RangeProtocolError,
  answerRangeQuery,
  decodeRangeAnswerChunk,
  decodeRangeQuery,
  encodeRangeAnswer,
  encodeRangeQuery,
  kvEventStreamName,
  kvEventSubject,
  workerQuerySubject,
} from "../src/index.js";
import { RingBuffer } from "../src/ring-buffer.js";

const w = { workerId: 5n, dpRank: 0 };
const ev = (id: number): RouterEvent =>
  RouterEvents.stored(w, BigInt(id), null, [{ blockHash: BigInt(1000 + id), tokensHash: BigInt(id) }]);
const dumped = [RouterEvents.stored(w, 0n, null, [{ blockHash: 1n, tokensHash: 2n }])];

function buffer(ids: number[], capacity = 4) {
  const b = new RingBuffer<RouterEvent>(capacity);
  for (const id of ids) b.push(ev(id));
  return b;
}

describe("answerRangeQuery", () => {
  const b = buffer([0, 1, 2, 3, 4, 5]); // keeps 2..5
  it("answers events from the buffer, bounded by the end id", () => {
    const a = answerRangeQuery(b, 5n, { startEventId: 3n, endEventId: 4n }, () => dumped);
    expect(a.kind).toBe("events");
    expect(a.events.map((e) => e.eventId)).toEqual([3n, 4n]);
    expect(
      answerRangeQuery(b, 5n, { startEventId: 2n, endEventId: null }, () => dumped).events.map((e) => e.eventId),
    ).toEqual([2n, 3n, 4n, 5n]);
  });
  it("answers a dump when the buffer no longer reaches back, or without a start", () => {
    expect(answerRangeQuery(b, 5n, { startEventId: 1n, endEventId: 3n }, () => dumped)).toEqual({
      kind: "tree_dump",
      lastEventId: 5n,
      events: dumped,
    });
    expect(answerRangeQuery(b, 5n, { startEventId: null, endEventId: null }, () => dumped).kind).toBe("tree_dump");
  });
  it("answers an older start with the events from a cleared at the buffer's head (nothing before a clear matters)", () => {
    const opened = new RingBuffer<RouterEvent>(4);
    for (const e of [RouterEvents.cleared(w, 900n), ev(901), ev(902)]) opened.push(e);
    const a = answerRangeQuery(opened, 902n, { startEventId: 0n, endEventId: 901n }, () => dumped);
    expect(a.kind).toBe("events");
    expect(a.events.map((e) => [e.eventId, e.data.type])).toEqual([
      [900n, "cleared"],
      [901n, "stored"],
    ]);
    opened.push(ev(903));
    opened.push(ev(904)); // the cleared rolled out of the buffer
    expect(answerRangeQuery(opened, 904n, { startEventId: 0n, endEventId: null }, () => dumped).kind).toBe("tree_dump");
  });
  it("answers too_new for a start past the newest event or before any event", () => {
    expect(answerRangeQuery(b, 5n, { startEventId: 6n, endEventId: null }, () => dumped)).toEqual({
      kind: "too_new",
      lastEventId: 5n,
      events: [],
    });
    expect(answerRangeQuery(buffer([]), null, { startEventId: 0n, endEventId: null }, () => dumped).kind).toBe(
      "too_new",
    );
  });
});

describe("range protocol codec", () => {
  it("round-trips queries with u64 ids", () => {
    const q = { startEventId: (1n << 64n) - 2n, endEventId: null };
    expect(decodeRangeQuery(encodeRangeQuery(q))).toEqual(q);
    expect(encodeRangeQuery({ startEventId: 3n, endEventId: 9n })).toBe('{"start_event_id":3,"end_event_id":9}');
  });
  it("splits large answers into chunks, only the last one final, and reassembles them", () => {
    const events = Array.from({ length: 50 }, (_, i) => ev(i));
    const chunks = encodeRangeAnswer({ kind: "events", lastEventId: 49n, events }, 1000);
    expect(chunks.length).toBeGreaterThan(5);
    const decoded = chunks.map(decodeRangeAnswerChunk);
    expect(decoded.map((c) => c.final)).toEqual(chunks.map((_, i) => i === chunks.length - 1));
    expect(decoded.flatMap((c) => c.events.map((e) => e.eventId))).toEqual(events.map((e) => e.eventId));
    expect(decoded[0]).toMatchObject({ kind: "events", lastEventId: 49n });
  });
  it("encodes an empty answer as one final chunk", () => {
    expect(encodeRangeAnswer({ kind: "too_new", lastEventId: null, events: [] }, 1000)).toEqual([
      '{"kind":"too_new","last_event_id":null,"final":true,"events":[]}',
    ]);
  });
  it.each(['{"start_event_id":-1}', '{"start_event_id":"3"}', "[1]", "not json"])("rejects the query %s", (text) => {
    expect(() => decodeRangeQuery(text)).toThrow(RangeProtocolError);
  });
  it("rejects answers of an unknown kind or without events", () => {
    expect(() => decodeRangeAnswerChunk('{"kind":"maybe","events":[]}')).toThrow(RangeProtocolError);
    expect(() => decodeRangeAnswerChunk('{"kind":"events"}')).toThrow(RangeProtocolError);
  });
});

describe("RingBuffer", () => {
  it("keeps the newest entries in order and binary-searches them", () => {
    const b = new RingBuffer<number>(3);
    for (const n of [1, 2, 3, 4, 5]) b.push(n);
    expect([b.at(0), b.at(1), b.at(2), b.at(3)]).toEqual([3, 4, 5, undefined]);
    expect(b.lowerBound((n) => n >= 4)).toBe(1);
    expect(b.lowerBound((n) => n >= 9)).toBe(3);
    b.clear();
    expect(b.length).toBe(0);
    expect(() => new RingBuffer(0)).toThrow(RangeError);
  });
});

describe("subjects", () => {
  it("follows Dynamo's naming", () => {
    expect(kvEventSubject("dynamo", "backend")).toBe("namespace.dynamo.component.backend.kv-events");
    expect(workerQuerySubject("dynamo", "backend", 18446744073709551615n, 2)).toBe(
      "namespace.dynamo.component.backend.worker_kv_indexer_query_dp2.18446744073709551615",
    );
    expect(kvEventStreamName("dynamo", "backend")).toBe("namespace-dynamo-component-backend-kv-events");
  });
});
