import { describe, expect, it } from "vitest";
import { OwnBookings, PeerLedger, decodeMessage, encodeMessage, type BookingChange } from "../src/index.js";

const add = (requestId: string, hashes: bigint[] | null = [1n, 2n ** 64n - 1n]): BookingChange => ({
  requestId,
  worker: { workerId: 2n ** 63n + 7n, dpRank: 1 },
  pool: "decode",
  routerId: 99n,
  data: {
    type: "add_request",
    tokenSequence: hashes === null ? null : BigUint64Array.from(hashes),
    privateBlocks: 2,
    isl: 40,
    prefillTokens: 24,
    expectedOutputTokens: 100,
  },
});
const free = (c: BookingChange): BookingChange => ({ ...c, data: { type: "free" } });
const prefillDone = (c: BookingChange): BookingChange => ({ ...c, data: { type: "mark_prefill_completed" } });

describe("wire format", () => {
  it("round-trips every change kind with 64-bit ids and hashes intact", () => {
    const changes = [add("a"), add("b", null), prefillDone(add("a")), free(add("a"))];
    const decoded = decodeMessage(encodeMessage({ kind: "changes", replica: "r1", changes }));
    expect(decoded).toEqual({ message: { kind: "changes", replica: "r1", changes } });
  });

  it("refuses malformed messages with the reason, without throwing", () => {
    const bad = (text: string) => decodeMessage(Buffer.from(text));
    expect(bad("{")).toMatchObject({ error: expect.stringMatching(/^not JSON/) });
    expect(bad('{"kind":"heartbeat","replica":"x","bookings":-1}')).toEqual({
      error: "heartbeat.bookings must be a non-negative integer",
    });
    expect(bad('{"kind":"changes","replica":"x","changes":[{"id":"r","w":"18446744073709551616"}]}')).toEqual({
      error: "r: w (worker id) must be a u64 in decimal",
    });
    const change = { id: "r", w: "1", r: 0, p: "decode", o: "1", t: "add", h: "AAE=", pb: 0, isl: 1, pt: 1 };
    expect(bad(JSON.stringify({ kind: "changes", replica: "x", changes: [change] }))).toEqual({
      error: "r: h is not a whole number of 8-byte hashes",
    });
    expect(bad('{"kind":"vote","replica":"x"}')).toEqual({ error: "kind must be changes, heartbeat or goodbye" });
  });
});

describe("PeerLedger", () => {
  it("applies a peer's add once (a re-announced add is known), frees only what the peer booked", () => {
    const ledger = new PeerLedger(1_000);
    expect(ledger.record("p", add("a"), 0)).toEqual({ apply: true, newPeer: true });
    expect(ledger.record("p", add("a"), 10)).toEqual({ apply: false, newPeer: false });
    expect(ledger.record("p", prefillDone(add("a")), 10)).toEqual({ apply: true, newPeer: false });
    expect(ledger.record("p", free(add("zz")), 10)).toEqual({ apply: false, newPeer: false });
    expect(ledger.bookings).toBe(1);
    expect(ledger.record("p", free(add("a")), 20)).toEqual({ apply: true, newPeer: false });
    expect(ledger.bookings).toBe(0);
  });

  it("expires a silent peer after its lease, returning the frees of its live bookings once", () => {
    const ledger = new PeerLedger(1_000);
    ledger.record("p", add("a"), 0);
    ledger.record("p", add("b"), 0);
    ledger.record("q", add("c"), 0);
    ledger.heard("q", 900);
    expect(ledger.expire(999)).toEqual([]);
    const gone = ledger.expire(1_000);
    expect(gone.map((g) => g.replica)).toEqual(["p"]);
    expect(gone[0]!.frees.map((f) => [f.requestId, f.data.type])).toEqual([
      ["a", "free"],
      ["b", "free"],
    ]);
    expect(ledger.expire(1_500)).toEqual([]);
    expect(ledger.bookings).toBe(1);
    // Heard again after expiry: a new peer, whose bookings come back through its re-announce.
    expect(ledger.heard("p", 1_600)).toBe(true);
  });
});

describe("OwnBookings", () => {
  it("re-announces live bookings as the changes that recreate them", () => {
    const own = new OwnBookings();
    own.track(add("a"));
    own.track(add("b"));
    own.track(prefillDone(add("a")));
    own.track(free(add("b")));
    expect(own.snapshot().map((c) => [c.requestId, c.data.type])).toEqual([
      ["a", "add_request"],
      ["a", "mark_prefill_completed"],
    ]);
  });
});
