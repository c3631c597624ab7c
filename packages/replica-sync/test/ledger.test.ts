import { describe, expect, it } from "vitest";
import type { DecisionAudit, RankLoadDelta } from "@dynamo/kv-router";
import {
  DecisionAudits,
  OwnBookings,
  PeerLedger,
  decodeMessage,
  encodeMessage,
  type BookingChange,
} from "../src/index.js";

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
const output = (c: BookingChange, generatedTokens: number): BookingChange => ({
  ...c,
  data: { type: "output", generatedTokens },
});

describe("wire format", () => {
  it("round-trips every change kind with 64-bit ids and hashes intact", () => {
    const changes = [add("a"), add("b", null), prefillDone(add("a")), output(add("a"), 17), free(add("a"))];
    const message = { kind: "changes" as const, replica: "r1", changes, seq: 7, seen: { r2: 3, r3: 0 } };
    expect(decodeMessage(encodeMessage(message))).toEqual({ message });
    const snapshot = { kind: "changes", replica: "r1", changes, seq: 7, snapshot: true } as const;
    expect(decodeMessage(encodeMessage(snapshot))).toEqual({ message: snapshot });
    const heartbeat = { kind: "heartbeat" as const, replica: "r1", bookings: 2, seq: 7, seen: { r2: 4 } };
    expect(decodeMessage(encodeMessage(heartbeat))).toEqual({ message: heartbeat });
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
    const out = { id: "r", w: "1", r: 0, p: "decode", o: "1", t: "output", g: -3 };
    expect(bad(JSON.stringify({ kind: "changes", replica: "x", changes: [out] }))).toEqual({
      error: "r: g (generated tokens) must be a non-negative integer",
    });
    expect(bad('{"kind":"changes","replica":"x","changes":[],"seq":1.5}')).toEqual({
      error: "seq must be a non-negative integer",
    });
    expect(bad('{"kind":"heartbeat","replica":"x","bookings":0,"seen":{"y":"1"}}')).toEqual({
      error: "seen maps replica ids to non-negative integers",
    });
    const huge = Object.fromEntries(Array.from({ length: 1025 }, (_, i) => [`r${i}`, 1]));
    expect(bad(JSON.stringify({ kind: "heartbeat", replica: "x", bookings: 0, seen: huge }))).toEqual({
      error: "seen names more than 1024 replicas",
    });
    expect(bad('{"kind":"heartbeat","replica":"x","bookings":0,"seq":-2}')).toEqual({
      error: "seq must be a non-negative integer",
    });
    expect(bad('{"kind":"changes","replica":"x","changes":[],"snapshot":"yes"}')).toEqual({
      error: "snapshot must be a boolean",
    });
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

describe("PeerLedger sequence numbers and snapshots", () => {
  it("flags a peer stale while new and after a gap in its sequence numbers, until its snapshot", () => {
    const ledger = new PeerLedger(1_000);
    ledger.record("p", add("a"), 0);
    expect(ledger.sequence("p", "changes", 1)).toBe(true); // new: its earlier bookings are unknown
    expect(ledger.replace("p", [add("a")], 1, 0)).toEqual([]);
    expect(ledger.sequence("p", "heartbeat", 1)).toBe(false);
    expect(ledger.sequence("p", "changes", 2)).toBe(false);
    expect(ledger.sequence("p", "heartbeat", 2)).toBe(false);
    expect(ledger.sequence("p", "changes", 4)).toBe(true); // message 3 was lost
    expect(ledger.sequence("p", "changes", 5)).toBe(true); // still stale: only a snapshot repairs
    ledger.replace("p", [], 5, 10);
    expect(ledger.sequence("p", "heartbeat", 6)).toBe(true); // a heartbeat past the last changes seen: lost too
    expect(ledger.sequence("q", "heartbeat", 3)).toBe(false); // unknown peers are not judged
  });

  it("replaces a peer's bookings with its snapshot: the ones it no longer holds come back as frees", () => {
    const ledger = new PeerLedger(1_000);
    ledger.record("p", add("a"), 0);
    ledger.record("p", add("b"), 0);
    ledger.record("q", add("c"), 0);
    const frees = ledger.replace("p", [add("b"), prefillDone(add("b")), add("d")], 9, 5);
    expect(frees.map((f) => [f.requestId, f.data.type])).toEqual([["a", "free"]]);
    expect(ledger.bookings).toBe(2); // b and c; the snapshot's new add d is recorded as usual
    expect(ledger.record("p", add("d"), 5)).toEqual({ apply: true, newPeer: false });
    expect(ledger.record("p", add("b"), 5)).toEqual({ apply: false, newPeer: false });
  });
});

describe("OwnBookings", () => {
  it("re-announces live bookings as the changes that recreate them", () => {
    const own = new OwnBookings();
    own.track(add("a"));
    own.track(add("b"));
    own.track(prefillDone(add("a")));
    own.track(output(add("a"), 16));
    own.track(output(add("a"), 32));
    own.track(free(add("b")));
    expect(own.snapshot()).toEqual([add("a"), prefillDone(add("a")), output(add("a"), 32)]);
  });
});

describe("DecisionAudits", () => {
  /** An audit whose choice changes once its rank "w1" carries at least `limit` more blocks. */
  const auditOn = (limit: number): DecisionAudit & { asked: number } => ({
    asked: 0,
    wouldChange(deltas) {
      this.asked++;
      return (deltas.decode.get("w1")?.blocks ?? 0) >= limit;
    },
  });
  const blocks = (n: number): RankLoadDelta => ({
    pool: "decode",
    rank: "w1",
    delta: { prefillTokens: 16 * n, blocks: n, requests: 1 },
  });

  it("counts peer bookings made without seeing a decision, and re-scores it once every peer has seen it", () => {
    const audits = new DecisionAudits(5_000, 100);
    const conflicting = auditOn(3);
    const safe = auditOn(100);
    audits.add(conflicting, 1, 0); // went out in our batch 1
    audits.add(safe, 2, 0); // batch 2
    // Peer p had seen none of our batches when it booked 2 + 2 blocks on w1: concurrent with both.
    audits.peerMessage("p", 0, [blocks(2)]);
    audits.peerMessage("p", 0, [blocks(2)]);
    // Peer q saw batch 1 before booking: concurrent with the second decision only.
    audits.peerMessage("q", 1, [blocks(50)]);
    expect(audits.settle(["p", "q"], 10)).toBe(0); // p has not seen either decision yet
    audits.peerMessage("p", 2, []); // a heartbeat: p has applied both batches
    expect(audits.settle(["p", "q"], 20)).toBe(1); // q has seen batch 1 only
    expect(conflicting.asked).toBe(1);
    audits.forget("q"); // q left: nobody else holds batch 2 open
    expect(audits.settle(["p"], 30)).toBe(1);
    expect(audits.stats).toEqual({ rechecked: 2, conflicts: 1, concurrent: 3 });
    expect(audits.openCount).toBe(0);
  });

  it("re-scores at the timeout a decision some peer never acknowledges, and bounds how many stay open", () => {
    const audits = new DecisionAudits(1_000, 2);
    audits.add(auditOn(1), 1, 0);
    audits.peerMessage("p", undefined, [blocks(1)]); // a peer that sends no seen vector
    expect(audits.settle(["p"], 999)).toBe(0);
    expect(audits.settle(["p"], 1_000)).toBe(1);
    expect(audits.stats).toMatchObject({ rechecked: 1, conflicts: 1 });
    for (let seq = 2; seq <= 4; seq++) audits.add(auditOn(1), seq, 2_000);
    expect(audits.openCount).toBe(2); // the oldest was re-scored early, with no concurrent load
    expect(audits.stats).toMatchObject({ rechecked: 2, conflicts: 1 });
  });
});
