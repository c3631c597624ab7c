import { computeBlockHashes, workerRankKey } from "@dynamo/kv-indexer";
import { seededRng } from "@dynamo/primitives";
import type { Picker } from "@dynamo/scheduling";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import {
  KvRouter,
  type ActiveSequenceEvent,
  type DecisionAudit,
  type KvRouterOptions,
  type RankLoadDelta,
  type RouteResult,
} from "../src/index.js";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BS, prompt, storedEvent } from "./helpers.js";

/** A 32-byte key file filled with `fill`. */
function keyFile(fill: number): string {
  const path = join(mkdtempSync(join(tmpdir(), "key-")), "tracking.key");
  writeFileSync(path, Buffer.alloc(32, fill));
  return path;
}

const router = (options: KvRouterOptions = {}) => new KvRouter({ blockSize: BS, rng: seededRng(11), ...options });
function routed(r: RouteResult) {
  if (r.kind !== "routed") throw new Error(`rejected: ${r.reason}: ${r.message}`);
  return r;
}

describe("KvRouter", () => {
  it("routes to the worker holding the prefix, explains every candidate and books the choice", () => {
    const kv = router();
    for (let w = 1; w <= 3; w++) kv.addWorker({ workerId: BigInt(w) });
    kv.applyEvent(storedEvent(2n, 0, 0n, prompt(6, 1, 0)));
    const d = routed(kv.route({ tokens: prompt(8, 1, 42, 6), requestId: "req-1", priority: 3 }));
    expect(d.worker).toEqual({ workerId: 2n, dpRank: 0 });
    expect(d).toMatchObject({
      bookingId: "req-1",
      mode: "aggregated",
      overlapBlocks: 6,
      cachedTokens: 6 * BS,
      requiredBlocks: 8,
      isl: 8 * BS,
      priority: 3,
      booked: true,
    });
    expect(d.explain.policy).toBe("kv");
    expect(d.explain.decode).toHaveLength(3);
    const w2 = d.explain.decode.find((c) => c.workerId === 2n)!;
    expect(w2).toMatchObject({
      overlapBlocks: 6,
      prefillBlocks: 2,
      decodeBlocks: 8,
      cost: 10,
      busy: false,
      chosen: true,
    });
    expect(w2.reason).toMatch(/lowest cost 10/);
    expect(d.explain.decode.filter((c) => !c.chosen).every((c) => c.cost === 16 && c.reason === "not chosen")).toBe(
      true,
    );
    expect(kv.load({ workerId: 2n, dpRank: 0 })).toEqual({
      activeBlocks: 8,
      activePrefillTokens: 2 * BS,
      activeRequests: 1,
    });
    expect(kv.route({ tokens: prompt(2, 9, 9), requestId: "req-1" })).toMatchObject({
      kind: "rejected",
      reason: "duplicate_request",
    });
  });

  it("rejects malformed requests without booking anything", () => {
    const kv = router();
    kv.addWorker({ workerId: 1n });
    expect(kv.route({})).toMatchObject({ kind: "rejected", reason: "invalid_request" });
    expect(kv.route({ tokens: prompt(2, 1, 1), isl: Number.NaN })).toMatchObject({
      kind: "rejected",
      reason: "invalid_request",
    });
    expect(kv.route({ tokens: prompt(2, 1, 1), expectedOutputTokens: -5 })).toMatchObject({
      kind: "rejected",
      reason: "invalid_request",
    });
    expect(kv.route({ tokens: prompt(2, 1, 1), overrides: { temperature: -1 } })).toEqual({
      kind: "rejected",
      reason: "invalid_request",
      message: "overrides.temperature must be a finite number ≥ 0, got -1",
    });
    expect(
      kv.route({ tokens: prompt(2, 1, 1), overrides: { overlapScoreCredit: Number.POSITIVE_INFINITY } }),
    ).toMatchObject({ reason: "invalid_request" });
    expect(kv.activeBookings).toBe(0);
    expect(kv.counters.rejected).toBe(5);
  });

  it("applies per-request overrides, warning once about the deprecated weight", () => {
    const warnings: string[] = [];
    const kv = router({ onWarning: (w) => warnings.push(w) });
    for (let w = 1; w <= 2; w++) kv.addWorker({ workerId: BigInt(w) });
    kv.applyEvent(storedEvent(1n, 0, 0n, prompt(6, 1, 0)));
    // Worker 1 holds the prefix but carries load; with the weight at 0 overlap earns nothing.
    routed(kv.route({ tokens: prompt(2, 7, 7), pinned: { workerId: 1n } }));
    const picks = [0, 1].map(() =>
      routed(kv.route({ tokens: prompt(8, 1, 42, 6), overrides: { overlapScoreWeight: 0 }, queryOnly: true })),
    );
    for (const d of picks) expect(d.worker.workerId).toBe(2n);
    expect(warnings).toEqual([
      "per-request overlap_score_weight is deprecated: it sets prefill_load_scale, and 0 also sets the overlap credit to 0",
    ]);
    expect(routed(kv.route({ tokens: prompt(8, 1, 42, 6), queryOnly: true })).worker.workerId).toBe(1n);
  });

  it("puts role-both workers in both pools and keyed tracking hashes still deduplicate", () => {
    const keyed = { trackingHash: "keyed-xxh3-v1", trackingKeyFile: keyFile(1) } as const;
    const kv = router(keyed);
    kv.addWorker({ workerId: 1n, role: "both" });
    const a = routed(kv.route({ tokens: prompt(4, 3, 1) }));
    expect(a).toMatchObject({ mode: "disaggregated", prefillWorker: { workerId: 1n }, worker: { workerId: 1n } });
    const agg = router(keyed);
    agg.addWorker({ workerId: 1n });
    routed(agg.route({ tokens: prompt(4, 3, 1) }));
    routed(agg.route({ tokens: prompt(4, 3, 1) }));
    expect(agg.load({ workerId: 1n, dpRank: 0 })).toMatchObject({ activeRequests: 2, activeBlocks: 4 });
    agg.addWorker({ workerId: 1n, role: "prefill" });
    expect(agg.activeBookings).toBe(0);
    expect(agg.load({ workerId: 1n, dpRank: 0 }, "prefill")).toMatchObject({ activeRequests: 0 });
  });

  // Before: keyed-xxh3-v1 chained from a random per-process key, so two replicas' tracking hashes never
  // agreed. After: the key comes from DYN_ROUTER_TRACKING_KEY_FILE, shared by the replicas.
  it("chains keyed tracking hashes from a shared 32-byte key file, so replicas agree", () => {
    const hashesOf = (options: KvRouterOptions) => {
      const events: ActiveSequenceEvent[] = [];
      const kv = router({ replicaSync: true, onActiveSequenceEvent: (e) => events.push(e), ...options });
      kv.addWorker({ workerId: 1n });
      routed(kv.route({ tokens: prompt(4, 3, 1) }));
      const data = events[0]!.data;
      return data.type === "add_request" ? [...(data.tokenSequence ?? [])] : [];
    };
    const shared = keyFile(7);
    const a = hashesOf({ trackingHash: "keyed-xxh3-v1", trackingKeyFile: shared, trackingKeyId: "k7" });
    const b = hashesOf({ trackingHash: "keyed-xxh3-v1", trackingKeyFile: shared });
    const other = hashesOf({ trackingHash: "keyed-xxh3-v1", trackingKeyFile: keyFile(8) });
    const plain = hashesOf({});
    expect(a).toHaveLength(4);
    expect(b).toEqual(a);
    expect(other).not.toEqual(a);
    expect(plain).not.toEqual(a);
    expect(() => router({ trackingHash: "keyed-xxh3-v1" })).toThrow(/DYN_ROUTER_TRACKING_KEY_FILE: required/);
    const short = join(mkdtempSync(join(tmpdir(), "key-")), "short.key");
    writeFileSync(short, Buffer.alloc(16));
    expect(() => router({ trackingHash: "keyed-xxh3-v1", trackingKeyFile: short })).toThrow(
      /16 bytes; expected exactly 32/,
    );
    expect(
      KvRouter.fromEnv({
        DYN_ROUTER_TRACKING_HASH: "keyed-xxh3-v1",
        DYN_ROUTER_TRACKING_KEY_FILE: shared,
        DYN_ROUTER_TRACKING_KEY_ID: "k7",
      }).settings,
    ).toMatchObject({ trackingKeyFile: shared, trackingKeyId: "k7" });
  });

  it("shares bookings between replicas when replica sync is on", () => {
    const inbox: { a: ActiveSequenceEvent[]; b: ActiveSequenceEvent[] } = { a: [], b: [] };
    const a = router({ replicaSync: true, onActiveSequenceEvent: (e) => inbox.b.push(e) });
    const b = router({ replicaSync: true, onActiveSequenceEvent: (e) => inbox.a.push(e) });
    for (const r of [a, b]) for (let w = 1; w <= 2; w++) r.addWorker({ workerId: BigInt(w) });
    const first = routed(a.route({ tokens: prompt(4, 1, 1), requestId: "x" }));
    expect(inbox.b.map((e) => e.data.type)).toEqual(["add_request"]);
    for (const e of inbox.b.splice(0)) expect(b.applyReplicaEvent(e)).toBe(true);
    expect(b.load(first.worker)).toEqual({ activeBlocks: 4, activePrefillTokens: 4 * BS, activeRequests: 1 });
    // B now sees A's booking, so an identical uncached request goes to the other worker.
    const second = routed(b.route({ tokens: prompt(4, 2, 2), requestId: "y" }));
    expect(second.worker.workerId).not.toBe(first.worker.workerId);
    for (const e of inbox.a.splice(0)) a.applyReplicaEvent(e);
    a.markPrefillComplete("x");
    a.free("x");
    expect(inbox.b.map((e) => e.data.type)).toEqual(["mark_prefill_completed", "free"]);
    for (const e of inbox.b.splice(0)) b.applyReplicaEvent(e);
    expect(b.load(first.worker)).toEqual({ activeBlocks: 0, activePrefillTokens: 0, activeRequests: 0 });
    expect(inbox.a).toEqual([]); // applying replica events publishes nothing
    const own = {
      requestId: "z",
      worker: first.worker,
      pool: "decode" as const,
      routerId: a.routerId,
      data: { type: "free" as const },
    };
    expect(a.applyReplicaEvent(own)).toBe(false);
    const quiet: ActiveSequenceEvent[] = [];
    const off = router({ onActiveSequenceEvent: (e) => quiet.push(e) });
    off.addWorker({ workerId: 1n });
    routed(off.route({ tokens: prompt(2, 1, 1) }));
    expect(quiet).toEqual([]);
  });

  it("shares output growth between replicas, so a peer counts the output blocks too", () => {
    const toB: ActiveSequenceEvent[] = [];
    const options = { replicaSync: true, trackOutputBlocks: true } as const;
    const a = router({ ...options, onActiveSequenceEvent: (e) => toB.push(e) });
    const b = router(options);
    for (const r of [a, b]) r.addWorker({ workerId: 1n });
    const d = routed(a.route({ tokens: prompt(4, 1, 1), requestId: "x" }));
    a.markPrefillComplete("x");
    for (let generated = 1; generated <= 40; generated++) a.observeOutput("x", generated);
    // One output change per block of output: 64 prompt tokens + 40 generated = 7 blocks, 3 of them output.
    expect(toB.filter((e) => e.data.type === "output").map((e) => e.data)).toEqual([
      { type: "output", generatedTokens: 1 },
      { type: "output", generatedTokens: 17 },
      { type: "output", generatedTokens: 33 },
    ]);
    for (const e of toB.splice(0)) b.applyReplicaEvent(e);
    expect(b.load(d.worker)).toEqual(a.load(d.worker));
    expect(b.load(d.worker)!.activeBlocks).toBe(4 + 3);
  });

  it("hands every Nth booked decision to onDecisionAudit, which re-scores it against peers' concurrent load", () => {
    const audits: DecisionAudit[] = [];
    const a = router({ replicaSync: true, replicaAuditEvery: 2, onDecisionAudit: (x) => audits.push(x) });
    const b = router({ replicaSync: true });
    for (const r of [a, b]) for (let w = 1; w <= 2; w++) r.addWorker({ workerId: BigInt(w) });
    a.applyEvent(storedEvent(1n, 0, 0n, prompt(3, 1, 0)));
    routed(a.route({ tokens: prompt(4, 9, 9), requestId: "first" }));
    expect(audits).toHaveLength(0);
    a.free("first");
    const d = routed(a.route({ tokens: prompt(4, 1, 0), requestId: "second" }));
    expect(d.worker.workerId).toBe(1n); // the cached prefix wins
    expect(audits).toHaveLength(1);
    const audit = audits[0]!;
    // A peer booked a long prompt on worker 1 at the same instant: measured as the load it added there.
    const deltas: RankLoadDelta[] = [];
    const peer: ActiveSequenceEvent[] = [];
    const c = router({ replicaSync: true, onActiveSequenceEvent: (e) => peer.push(e) });
    c.addWorker({ workerId: 1n });
    routed(c.route({ tokens: prompt(40, 5, 5), requestId: "peer" }));
    for (const e of peer) b.applyReplicaEvent(e, (change) => deltas.push(change));
    const load = { prefillTokens: 40 * BS, blocks: 40, requests: 1 };
    expect(deltas).toEqual([{ pool: "decode", rank: workerRankKey(1n, 0), delta: load }]);
    const on = (rank: string, pool: "decode" | "prefill" = "decode") => ({
      decode: new Map(pool === "decode" ? [[rank, load]] : []),
      prefill: new Map(pool === "prefill" ? [[rank, load]] : []),
    });
    expect(audit.wouldChange(on(workerRankKey(1n, 0)))).toBe(true);
    expect(audit.wouldChange({ decode: new Map(), prefill: new Map() })).toBe(false);
    // The same load on worker 2 only makes worker 1 the better choice.
    expect(audit.wouldChange(on(workerRankKey(2n, 0)))).toBe(false);
    // An aggregated decision has no prefill choice: load in the prefill pool changes nothing.
    expect(audit.wouldChange(on(workerRankKey(1n, 0), "prefill"))).toBe(false);
    // Without replica sync no audits are made.
    const single: DecisionAudit[] = [];
    const off = router({ replicaAuditEvery: 1, onDecisionAudit: (x) => single.push(x) });
    off.addWorker({ workerId: 1n });
    routed(off.route({ tokens: prompt(2, 1, 1) }));
    expect(single).toEqual([]);
  });

  it("with replica sync and a tie band, near-equal workers split a request stream; the band never overrides a clear winner", () => {
    const chosen = (options: KvRouterOptions) => {
      const kv = router({ ...options, rng: seededRng(5) });
      for (let w = 1; w <= 3; w++) kv.addWorker({ workerId: BigInt(w) });
      // Worker 1 holds one block of every 8-block prompt: cheaper by one block, a near tie.
      kv.applyEvent(storedEvent(1n, 0, 0n, prompt(1, 7, 0)));
      const seen = new Set<bigint>();
      for (let i = 0; i < 30; i++) {
        const d = routed(kv.route({ tokens: prompt(8, 7, 0), requestId: `r${i}`, queryOnly: true }));
        seen.add(d.worker.workerId);
      }
      return [...seen].sort();
    };
    expect(chosen({ replicaSync: true })).toEqual([1n]);
    expect(chosen({ replicaTieBand: 0.25 })).toEqual([1n]); // without replica sync the band is off
    expect(chosen({ replicaSync: true, replicaTieBand: 0.25 })).toEqual([1n, 2n, 3n]); // band: 2 blocks
    expect(chosen({ replicaSync: true, replicaTieBand: 0.05 })).toEqual([1n]); // band 0.4 block < 1 block gap
  });

  it("keeps a session on its worker while the affinity lasts and the worker can take it", () => {
    let now = 0;
    const kv = router({ sessionAffinityTtlSecs: 60, now: () => now, busyThreshold: 0.5 });
    kv.addWorker({ workerId: 1n, kvTotalBlocks: 100 });
    kv.addWorker({ workerId: 2n, kvTotalBlocks: 100 });
    const first = routed(kv.route({ tokens: prompt(4, 1, 1), sessionId: "s1" }));
    // Without affinity the next request would go to the idle worker; the session keeps it on the first.
    const again = routed(kv.route({ tokens: prompt(4, 2, 2), sessionId: "s1" }));
    expect(again.worker).toEqual(first.worker);
    const s2 = routed(kv.route({ tokens: prompt(4, 3, 3), sessionId: "s2" }));
    expect(s2.worker).not.toEqual(first.worker);
    now += 61_000;
    for (const d of [first, again, s2]) kv.free(d.bookingId);
    const other = first.worker.workerId === 1n ? 2n : 1n;
    kv.applyEvent(storedEvent(other, 0, 0n, prompt(4, 4, 0)));
    expect(routed(kv.route({ tokens: prompt(4, 4, 0), sessionId: "s1" })).worker.workerId).toBe(other);
    kv.addWorker({ workerId: other, kvTotalBlocks: 4 }); // now over the busy threshold
    const stickyBusy = routed(kv.route({ tokens: prompt(2, 5, 5), sessionId: "s1" }));
    expect(stickyBusy.worker.workerId).toBe(first.worker.workerId);
  });

  it("keeps prefill-complete, output and free idempotent", () => {
    const kv = router({ trackOutputBlocks: true });
    kv.addWorker({ workerId: 1n });
    const d = routed(kv.route({ tokens: prompt(4, 1, 1), expectedOutputTokens: 64 }));
    const rank = { workerId: 1n, dpRank: 0 };
    expect(kv.markPrefillComplete(d.bookingId)).toBe(true);
    expect(kv.markPrefillComplete(d.bookingId)).toBe(true);
    expect(kv.load(rank)).toMatchObject({ activePrefillTokens: 0, activeBlocks: 4 });
    expect(kv.observeOutput(d.bookingId, 32)).toBe(true); // 2 output blocks, decay 0.5 on 6 exclusive blocks
    expect(kv.observeOutput(d.bookingId, 32)).toBe(true);
    expect(kv.load(rank)!.activeBlocks).toBe(3);
    expect(kv.free(d.bookingId)).toBe(true);
    expect(kv.free(d.bookingId)).toBe(false);
    expect(kv.markPrefillComplete(d.bookingId)).toBe(false);
    expect(kv.observeOutput(d.bookingId, 99)).toBe(false);
    expect(kv.load(rank)).toEqual({ activeBlocks: 0, activePrefillTokens: 0, activeRequests: 0 });
  });

  it("selects and books in one step under many concurrent async callers", async () => {
    const kv = router();
    const workers = 8;
    for (let w = 1; w <= workers; w++) kv.addWorker({ workerId: BigInt(w), dpSize: 2 });
    const n = 160;
    const results = await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        await sleep(i % 7);
        await Promise.resolve();
        return routed(kv.route({ tokens: prompt(4, 1000 + i, i) }));
      }),
    );
    // Identical-size requests with no overlap: booking before the next selection spreads them evenly.
    const perRank = new Map<string, number>();
    for (const d of results)
      perRank.set(
        `${d.worker.workerId}/${d.worker.dpRank}`,
        (perRank.get(`${d.worker.workerId}/${d.worker.dpRank}`) ?? 0) + 1,
      );
    expect(perRank.size).toBe(workers * 2);
    expect([...perRank.values()].every((c) => c === n / (workers * 2))).toBe(true);
    expect(new Set(results.map((d) => d.bookingId)).size).toBe(n);
    expect(kv.activeBookings).toBe(n);
    let total = 0;
    for (let w = 1; w <= workers; w++)
      for (const r of [0, 1]) total += kv.load({ workerId: BigInt(w), dpRank: r })!.activeRequests;
    expect(total).toBe(n);
    await Promise.all(results.map(async (d) => kv.free(d.bookingId)));
    expect(kv.activeBookings).toBe(0);
    expect(kv.counters).toMatchObject({ routes: n, aggregated: n, rejected: 0 });
  });

  it("treats (worker, DP rank) pairs as candidates", () => {
    const kv = router();
    kv.addWorker({ workerId: 7n, dpSize: 4, dpStart: 0 });
    kv.applyEvent(storedEvent(7n, 2, 0n, prompt(4, 3, 0)));
    const d = routed(kv.route({ tokens: prompt(4, 3, 1) }));
    expect(d.worker).toEqual({ workerId: 7n, dpRank: 2 });
    expect(d.explain.decode.map((c) => c.dpRank)).toEqual([0, 1, 2, 3]);
    expect(routed(kv.route({ tokens: prompt(4, 3, 1), pinned: { workerId: 7n, dpRank: 1 } })).worker).toEqual({
      workerId: 7n,
      dpRank: 1,
    });
    expect(kv.route({ tokens: prompt(4, 3, 1), allowedWorkers: [8n] })).toMatchObject({
      kind: "rejected",
      reason: "no_candidates",
    });
  });

  it("salts block hashes with the LoRA name and accepts precomputed hashes", () => {
    const kv = router();
    kv.addWorker({ workerId: 1n });
    kv.addWorker({ workerId: 2n });
    kv.applyEvent(storedEvent(2n, 0, 0n, prompt(4, 5, 0), "device", { loraName: "sql-adapter" }));
    expect(routed(kv.route({ tokens: prompt(4, 5, 0), loraName: "sql-adapter", queryOnly: true })).overlapBlocks).toBe(
      4,
    );
    expect(routed(kv.route({ tokens: prompt(4, 5, 0), queryOnly: true })).overlapBlocks).toBe(0);
    const local = computeBlockHashes(prompt(4, 5, 0), BS, { loraName: "sql-adapter" });
    const q = routed(kv.route({ localHashes: local, queryOnly: true }));
    expect(q).toMatchObject({ overlapBlocks: 4, isl: 4 * BS, booked: false, worker: { workerId: 2n } });
    expect(kv.activeBookings).toBe(0);
  });

  it("credits host and disk tiers and ignores events when there is no index", () => {
    const kv = router();
    kv.addWorker({ workerId: 1n });
    kv.addWorker({ workerId: 2n });
    kv.applyEvent(storedEvent(1n, 0, 0n, prompt(2, 6, 0)));
    kv.applyEvent(storedEvent(2n, 0, 0n, prompt(8, 6, 0), "host_pinned"));
    const d = routed(kv.route({ tokens: prompt(8, 6, 0), queryOnly: true }));
    const [w1, w2] = [1n, 2n].map((id) => d.explain.decode.find((c) => c.workerId === id)!);
    expect(w1).toMatchObject({ overlapBlocks: 2, hostOverlapBlocks: 0, prefillBlocks: 6 });
    expect(w2).toMatchObject({ overlapBlocks: 0, hostOverlapBlocks: 8, prefillBlocks: 2 });
    expect(d.worker.workerId).toBe(2n);
    const off = router({ overlapScoreCredit: 0 });
    expect(off.applyEvent(storedEvent(1n, 0, 0n, prompt(2, 6, 0)))).toBe("ignored");
    expect(off.counters.eventsIgnored).toBe(1);
  });

  it("learns from its own decisions in approximate mode and forgets after the TTL", () => {
    let now = 1_000_000;
    const kv = router({ useKvEvents: false, ttlSecs: 120, now: () => now });
    for (let w = 1; w <= 4; w++) kv.addWorker({ workerId: BigInt(w) });
    expect(kv.applyEvent(storedEvent(1n, 0, 0n, prompt(4, 8, 0)))).toBe("ignored");
    const first = routed(kv.route({ tokens: prompt(6, 8, 1, 4) }));
    kv.free(first.bookingId);
    const second = routed(kv.route({ tokens: prompt(6, 8, 2, 4) }));
    expect(second.worker).toEqual(first.worker);
    expect(second.overlapBlocks).toBe(4);
    kv.free(second.bookingId);
    now += 121_000;
    expect(routed(kv.route({ tokens: prompt(6, 8, 3, 4), queryOnly: true })).overlapBlocks).toBe(0);
  });

  it("predicts on route with a short-TTL side index combined with the event index", () => {
    let now = 0;
    const kv = router({ predictedTtlSecs: 5, now: () => now });
    for (let w = 1; w <= 4; w++) kv.addWorker({ workerId: BigInt(w) });
    kv.applyEvent(storedEvent(3n, 0, 0n, prompt(2, 9, 0)));
    const first = routed(kv.route({ tokens: prompt(6, 9, 1, 5) }));
    expect(first.worker.workerId).toBe(3n);
    kv.free(first.bookingId);
    const sibling = routed(kv.route({ tokens: prompt(6, 9, 2, 5), queryOnly: true }));
    expect(sibling).toMatchObject({ overlapBlocks: 5, worker: { workerId: 3n } });
    now += 6_000;
    expect(routed(kv.route({ tokens: prompt(6, 9, 2, 5), queryOnly: true })).overlapBlocks).toBe(2);
  });

  it("plans disaggregated requests, falls back to aggregated, or fails when disaggregation is enforced", () => {
    const kv = router();
    kv.addWorker({ workerId: 1n, role: "prefill" });
    kv.addWorker({ workerId: 2n, role: "prefill" });
    kv.addWorker({ workerId: 10n, role: "decode" });
    kv.applyEvent(storedEvent(2n, 0, 0n, prompt(4, 2, 0)));
    const d = routed(kv.route({ tokens: prompt(4, 2, 0) }));
    expect(d).toMatchObject({
      mode: "disaggregated",
      prefillWorker: { workerId: 2n, dpRank: 0 },
      worker: { workerId: 10n, dpRank: 0 },
      overlapBlocks: 4,
      fallback: false,
    });
    expect(d.explain.prefill).toHaveLength(2);
    expect(kv.load({ workerId: 2n, dpRank: 0 }, "prefill")).toMatchObject({ activeRequests: 1, activeBlocks: 0 });
    kv.markPrefillComplete(d.bookingId);
    expect(kv.load({ workerId: 2n, dpRank: 0 }, "prefill")).toMatchObject({ activeRequests: 0 });
    expect(kv.load({ workerId: 10n, dpRank: 0 })).toMatchObject({
      activeRequests: 1,
      activeBlocks: 4,
      activePrefillTokens: 0,
    });
    kv.removeWorker(1n);
    kv.removeWorker(2n);
    expect(routed(kv.route({ tokens: prompt(4, 2, 0) }))).toMatchObject({ mode: "aggregated", fallback: true });
    expect(kv.counters).toMatchObject({ disaggregated: 1, aggregated: 1, fallbacks: 1 });
    const strict = router({ enforceDisagg: true });
    strict.addWorker({ workerId: 10n });
    expect(strict.route({ tokens: prompt(4, 2, 0) })).toMatchObject({
      kind: "rejected",
      reason: "prefill_unavailable",
    });
  });

  it("skips busy workers and reports overloaded when all are busy", () => {
    const kv = router({ busyThreshold: 0.5 });
    kv.addWorker({ workerId: 1n, kvTotalBlocks: 8 });
    kv.addWorker({ workerId: 2n, kvTotalBlocks: 8 });
    kv.applyEvent(storedEvent(1n, 0, 0n, prompt(6, 4, 0)));
    expect(routed(kv.route({ tokens: prompt(6, 4, 1) })).worker.workerId).toBe(1n); // 6/8 blocks now
    const next = routed(kv.route({ tokens: prompt(6, 4, 2) }));
    expect(next.worker.workerId).toBe(2n);
    expect(next.explain.decode.find((c) => c.workerId === 1n)).toMatchObject({ busy: true, chosen: false });
    const rejected = kv.route({ tokens: prompt(2, 4, 3) });
    expect(rejected).toMatchObject({ kind: "rejected", reason: "overloaded" });
    expect(rejected.kind === "rejected" && rejected.explain?.decode.every((c) => c.busy)).toBe(true);
    expect(kv.counters.overloaded).toBe(1);
  });

  // Before: bookings expired after 3600 s from booking, whatever the stream did; a lost free stayed for
  // an hour. After: a 300 s lease renewed by output progress.
  it("expires a lost booking within five minutes but never a long healthy stream", () => {
    let now = 0;
    const kv = router({ now: () => now });
    expect(kv.settings.activeRequestExpirySecs).toBe(300);
    kv.addWorker({ workerId: 1n });
    const streaming = routed(kv.route({ tokens: prompt(2, 1, 1) }));
    const lost = routed(kv.route({ tokens: prompt(2, 1, 2) }));
    kv.markPrefillComplete(streaming.bookingId);
    for (let minute = 1; minute <= 20; minute++) {
      now = minute * 60_000;
      if (minute % 2 === 0) kv.renew(streaming.bookingId);
      else kv.observeOutput(streaming.bookingId, minute * 100);
      const expired = kv.expireStale();
      if (minute === 5) expect(expired).toEqual([lost.bookingId]);
      else expect(expired).toEqual([]);
    }
    expect(kv.free(streaming.bookingId)).toBe(true);
    expect(kv.renew(lost.bookingId)).toBe(false);
  });

  it("drops the bookings of a removed worker and of stale requests", () => {
    let now = 0;
    const kv = router({ activeRequestExpirySecs: 60, now: () => now });
    kv.addWorker({ workerId: 1n });
    const a = routed(kv.route({ tokens: prompt(2, 1, 1) }));
    kv.removeWorker(1n);
    expect(kv.activeBookings).toBe(0);
    expect(kv.free(a.bookingId)).toBe(false);
    kv.addWorker({ workerId: 1n });
    routed(kv.route({ tokens: prompt(2, 1, 2) }));
    now += 61_000;
    expect(kv.expireStale()).toHaveLength(1);
    expect(kv.activeBookings).toBe(0);
    expect(kv.counters.bookingsDropped).toBe(2);
  });

  it("supports round-robin mode, direct mode, a plugged-in policy and a minimum worker count", () => {
    const rr = router({ mode: "round-robin" });
    for (let w = 1; w <= 3; w++) rr.addWorker({ workerId: BigInt(w) });
    expect(
      [1, 2, 3, 4].map(() => routed(rr.route({ tokens: prompt(2, 1, 1), queryOnly: true })).worker.workerId),
    ).toEqual([1n, 2n, 3n, 1n]);
    for (const mode of ["least-loaded", "power-of-two"] as const) {
      const balanced = KvRouter.fromEnv({ DYN_ROUTER_MODE: mode }, { blockSize: BS, rng: seededRng(3) });
      for (let w = 1; w <= 3; w++) balanced.addWorker({ workerId: BigInt(w) });
      balanced.applyEvent(storedEvent(1n, 0, 0n, prompt(6, 1, 0)));
      const counts = [0, 0, 0];
      for (let i = 0; i < 30; i++)
        counts[Number(routed(balanced.route({ tokens: prompt(6, 1, i) })).worker.workerId) - 1]!++;
      if (mode === "least-loaded") expect(counts).toEqual([10, 10, 10]);
      else for (const c of counts) expect(c).toBeGreaterThanOrEqual(8);
      expect(routed(balanced.route({ tokens: prompt(6, 1, 99), queryOnly: true })).explain.policy).toBe(mode);
    }
    const direct = router({ mode: "direct" });
    direct.addWorker({ workerId: 1n });
    expect(direct.route({ tokens: prompt(2, 1, 1) })).toMatchObject({ kind: "rejected", reason: "invalid_request" });
    expect(routed(direct.route({ tokens: prompt(2, 1, 1), pinned: { workerId: 1n } })).worker.workerId).toBe(1n);
    const fewestRequests: Picker = {
      name: "fewest-requests",
      choose: (_req, candidates) => {
        const index = candidates.reduce(
          (best, c, i) => (c.load.activeRequests < candidates[best]!.load.activeRequests ? i : best),
          0,
        );
        return { index, reason: "fewest active requests" };
      },
    };
    const custom = router({ picker: () => fewestRequests });
    for (let w = 1; w <= 2; w++) custom.addWorker({ workerId: BigInt(w) });
    custom.applyEvent(storedEvent(1n, 0, 0n, prompt(4, 1, 0)));
    const picks = [1, 2].map(() => routed(custom.route({ tokens: prompt(4, 1, 0) })));
    expect(picks.map((d) => d.worker.workerId)).toEqual([1n, 2n]);
    expect(picks[1]!.explain).toMatchObject({ policy: "fewest-requests" });
    const notReady = router({ minInitialWorkers: 2 });
    notReady.addWorker({ workerId: 1n, role: "both" });
    notReady.addWorker({ workerId: 1n, role: "both" });
    expect(notReady.route({ tokens: prompt(2, 1, 1) })).toMatchObject({ kind: "rejected", reason: "not_ready" });
    notReady.addWorker({ workerId: 2n });
    expect(notReady.route({ tokens: prompt(2, 1, 1) }).kind).toBe("routed");
  });
});
