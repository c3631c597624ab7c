import { RouterEvents, type RouterEvent } from "@dynamo/kv-indexer";
import { describe, expect, it } from "vitest";
import { admission, covers, eventsToApply, judgeAnswer } from "../src/nats/gap-recovery.js";
import { consecutiveRun, continuity, coversRange, type ReplayedBatch } from "../src/zmq/sequence-gaps.js";

const W = { workerId: 9n, dpRank: 0 };
const stored = (id: number): RouterEvent =>
  RouterEvents.stored(W, BigInt(id), null, [{ blockHash: BigInt(100 + id), tokensHash: BigInt(id) }]);
const cleared = (id: number): RouterEvent => RouterEvents.cleared(W, BigInt(id));
const batch = (seq: number, byte = seq): ReplayedBatch => ({
  seq: BigInt(seq),
  topic: "",
  payload: Uint8Array.of(byte),
});

describe("gap recovery on the NATS event plane (pure decisions)", () => {
  it("applies in-order events, restarts at a cleared past a gap, and recovers the missing range otherwise", () => {
    expect(admission(stored(0), undefined)).toEqual({ kind: "apply" });
    expect(admission(stored(5), 4n)).toEqual({ kind: "apply" });
    expect(admission(stored(3), 4n)).toEqual({ kind: "apply" }); // a duplicate: the index drops it
    expect(admission(cleared(9), 4n)).toEqual({ kind: "restart" });
    expect(admission(stored(9), 4n)).toEqual({ kind: "recover", from: 5n, to: 8n });
    expect(admission(stored(3), undefined)).toEqual({ kind: "recover", from: 0n, to: 2n });
  });

  it("judges answers: dumps replace, covering events apply, a clear at the head voids what came before", () => {
    const events = (ids: number[]) => ({ kind: "events" as const, lastEventId: 20n, events: ids.map(stored) });
    expect(judgeAnswer({ kind: "tree_dump", lastEventId: 20n, events: [] }, null, null)).toBe("replace_with_dump");
    expect(judgeAnswer(events([5, 6, 7, 8]), 5n, 8n)).toBe("apply_events");
    expect(judgeAnswer(events([5, 7, 8]), 5n, 8n)).toBe("ask_for_dump");
    expect(judgeAnswer(events([5, 6]), 5n, 8n)).toBe("ask_for_dump");
    expect(judgeAnswer({ kind: "too_new", lastEventId: 4n, events: [] }, 5n, null)).toBe("nothing_missing");
    expect(judgeAnswer({ kind: "too_new", lastEventId: 2n, events: [] }, 5n, null)).toBe("ask_for_dump");
    const afterClear = [cleared(7), stored(8)];
    expect(covers(afterClear, 5n, 8n)).toBe(true);
    expect(eventsToApply(afterClear, 5n, 8n)).toEqual({ restartAt: 7n, events: afterClear });
    expect(eventsToApply([4, 5, 6, 7].map(stored), 5n, 6n).events.map((e) => e.eventId)).toEqual([5n, 6n]);
  });
});

describe("gap recovery on a vLLM ZeroMQ stream (pure decisions)", () => {
  it("tells a covered range and the consecutive run of a replay", () => {
    expect(coversRange([batch(3), batch(4), batch(5)], 3n, 6n)).toBe(true);
    expect(coversRange([batch(3), batch(5)], 3n, 6n)).toBe(false);
    expect(coversRange([], 3n, 4n)).toBe(false);
    expect(consecutiveRun([batch(4), batch(5), batch(7)], 3n).map((b) => b.seq)).toEqual([4n, 5n]);
    expect(consecutiveRun([batch(6), batch(7)], 3n)).toEqual([]);
    expect(consecutiveRun([batch(6), batch(7)], null).map((b) => b.seq)).toEqual([6n, 7n]);
  });

  it("tells the same publisher from a restarted one by the bytes of the last batch", () => {
    const last = Uint8Array.of(5);
    expect(continuity({ batches: [batch(5), batch(6)], complete: true }, 5n, last)).toBe("same");
    expect(continuity({ batches: [batch(5, 99)], complete: true }, 5n, last)).toBe("restarted");
    expect(continuity({ batches: [batch(1), batch(2)], complete: true }, 5n, last)).toBe("restarted");
    expect(continuity({ batches: [batch(9)], complete: true }, 5n, last)).toBe("unknown");
    expect(continuity({ batches: [], complete: false }, 5n, last)).toBe("unknown");
  });
});
