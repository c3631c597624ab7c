import { seededRng } from "@dynamo/primitives";
import { computeSequenceHashes, workerRankKey } from "@dynamo/kv-indexer";
import { describe, expect, it } from "vitest";
import {
  LeastLoadedPicker,
  PowerOfTwoPicker,
  RandomPicker,
  RoundRobinPicker,
  WorkerPool,
  busyWorkers,
  rankBusyReason,
  type Evaluation,
  type PoolRequest,
} from "../src/index.js";

const BS = 16;
const seqOf = (...locals: number[]) => computeSequenceHashes(BigUint64Array.from(locals.map(BigInt)));
const request = (blocks: number, extra: Partial<PoolRequest> = {}): PoolRequest => ({
  isl: blocks * BS,
  sequenceHashes: seqOf(...Array.from({ length: blocks }, (_, i) => i + 1)),
  ...extra,
});
const key = (w: number, r = 0) => workerRankKey(BigInt(w), r);
function chosenKey(e: Evaluation): string {
  if (e.kind !== "chosen") throw new Error(`expected a choice, got ${e.reason}`);
  return e.chosen.rank.key;
}

describe("WorkerPool", () => {
  it("scores every (worker, DP rank) pair and books the choice", () => {
    const pool = new WorkerPool({ blockSize: BS, rng: seededRng(1) });
    pool.addWorker({ workerId: 1n, dpSize: 2 });
    pool.addWorker({ workerId: 2n, dpStart: 4, dpSize: 2 });
    expect(pool.ranks().map((r) => r.key)).toEqual([key(1, 0), key(1, 1), key(2, 4), key(2, 5)]);
    const req = request(4, { overlaps: { device: new Map([[key(2, 5), 3]]) } });
    const e = pool.evaluate(req);
    expect(chosenKey(e)).toBe(key(2, 5));
    expect(e.candidates).toHaveLength(4);
    if (e.kind === "chosen") {
      expect(e.chosen.breakdown.prefillBlocks).toBe(1);
      expect(pool.book("r1", e.chosen, req)).toBe(true);
    }
    expect(pool.sequences.load(key(2, 5))).toEqual({ activeBlocks: 4, activePrefillTokens: BS, activeRequests: 1 });
  });

  it("spreads identical uncached requests as load accumulates", () => {
    const pool = new WorkerPool({ blockSize: BS, rng: seededRng(2) });
    for (let w = 1; w <= 3; w++) pool.addWorker({ workerId: BigInt(w) });
    const seen = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const req = { ...request(4), sequenceHashes: seqOf(100 * i + 1, 100 * i + 2, 100 * i + 3, 100 * i + 4) };
      const e = pool.evaluate(req);
      if (e.kind !== "chosen") throw new Error("no choice");
      pool.book(`r${i}`, e.chosen, req);
      seen.add(e.chosen.rank.key);
    }
    expect(seen.size).toBe(3);
  });

  it("honours the allowed-worker subset and pinned worker/rank", () => {
    const pool = new WorkerPool({ blockSize: BS });
    pool.addWorker({ workerId: 1n });
    pool.addWorker({ workerId: 2n, dpSize: 2 });
    const overlaps = { device: new Map([[key(1), 4]]) };
    expect(chosenKey(pool.evaluate(request(4, { overlaps, allowedWorkers: new Set([2n]) })))).toMatch(/^2\//);
    const pinned = pool.evaluate(request(4, { overlaps, pinned: { workerId: 2n, dpRank: 1 } }));
    expect(chosenKey(pinned)).toBe(key(2, 1));
    expect(pinned.kind === "chosen" && pinned.reason).toBe("pinned");
    expect(pool.evaluate(request(4, { pinned: { workerId: 9n } }))).toMatchObject({
      kind: "rejected",
      reason: "pinned_unavailable",
    });
    expect(pool.evaluate(request(4, { pinned: { workerId: 2n, dpRank: 7 } }))).toMatchObject({
      kind: "rejected",
      reason: "pinned_unavailable",
    });
    expect(pool.evaluate(request(4, { allowedWorkers: new Set([9n]) }))).toMatchObject({
      kind: "rejected",
      reason: "no_candidates",
    });
  });

  it("skips a worker over DYN_BUSY_THRESHOLD for the next best, and reports overloaded when all are busy", () => {
    const pool = new WorkerPool({ blockSize: BS, busy: { busyThreshold: 0.5 } });
    pool.addWorker({ workerId: 1n, kvTotalBlocks: 10 });
    pool.addWorker({ workerId: 2n, kvTotalBlocks: 10 });
    const warm = request(6);
    const first = pool.evaluate({ ...warm, pinned: { workerId: 1n, dpRank: 0 } });
    if (first.kind !== "chosen") throw new Error("pin failed");
    pool.book("fill1", first.chosen, warm); // worker 1: 6/10 blocks > 0.5
    const req = request(6, { overlaps: { device: new Map([[key(1), 6]]) } });
    const e = pool.evaluate(req);
    expect(chosenKey(e)).toBe(key(2));
    expect(e.candidates.find((c) => c.rank.key === key(1))!.busyReason).toMatch(/busy threshold/);
    if (e.kind === "chosen") pool.book("fill2", e.chosen, req);
    expect(pool.evaluate(request(2))).toMatchObject({ kind: "rejected", reason: "overloaded" });
    expect(pool.evaluate(request(2, { pinned: { workerId: 1n, dpRank: 0 } }))).toMatchObject({
      kind: "rejected",
      reason: "pinned_overloaded",
    });
    const off = new WorkerPool({ blockSize: BS, busy: { busyThreshold: -1 } });
    off.addWorker({ workerId: 1n, kvTotalBlocks: 1 });
    off.book("x", (off.evaluate(warm) as Extract<Evaluation, { kind: "chosen" }>).chosen, warm);
    expect(off.evaluate(request(2)).kind).toBe("chosen");
  });

  it("skips a single DP rank over DYN_BUSY_THRESHOLD, while the other thresholds exclude only fully busy workers", () => {
    const fill = (pool: WorkerPool) => {
      pool.addWorker({ workerId: 1n, dpSize: 2, kvTotalBlocks: 10 });
      pool.addWorker({ workerId: 2n, kvTotalBlocks: 10 });
      const warm = request(6);
      const pinned = pool.evaluate({ ...warm, pinned: { workerId: 1n, dpRank: 0 } });
      if (pinned.kind !== "chosen") throw new Error("pin failed");
      pool.book("fill", pinned.chosen, warm); // rank 1/0: 6 of 10 blocks
      pool.sequences.markPrefillCompleted("fill"); // no prompt backlog: only the blocks count
      // Rank 1/0 holds the prompt: it would win on cost if it were eligible.
      return pool.evaluate(request(6, { overlaps: { device: new Map([[key(1, 0), 6]]) } }));
    };
    const perRank = fill(new WorkerPool({ blockSize: BS, busy: { busyThreshold: 0.5 }, rng: seededRng(4) }));
    expect(chosenKey(perRank)).not.toBe(key(1, 0));
    const skipped = perRank.candidates.find((c) => c.rank.key === key(1, 0))!;
    expect(skipped).toMatchObject({ excluded: true });
    expect(skipped.busyReason).toMatch(/busy threshold/);
    expect(perRank.busyWorkers.size).toBe(0);
    expect(perRank.candidates.filter((c) => c.excluded)).toHaveLength(1);
    const perWorker = fill(
      new WorkerPool({ blockSize: BS, busy: { activeDecodeBlocksThreshold: 0.5 }, rng: seededRng(4) }),
    );
    // Rank 1/0 costs 6 (its 6 active blocks, the prompt fully cached); every other rank 12.
    expect(perWorker.kind === "chosen" && perWorker.chosen.cost).toBe(6);
    expect(chosenKey(perWorker)).toBe(key(1, 0));
    expect(perWorker.candidates.every((c) => !c.excluded)).toBe(true);
  });

  it("considers a multi-rank worker busy only when all its ranks are busy", () => {
    expect(
      busyWorkers([
        { workerId: 1n, busy: true },
        { workerId: 1n, busy: false },
        { workerId: 2n, busy: true },
      ]),
    ).toEqual(new Set([2n]));
    const t = { activePrefillTokens: 900, activeBlocks: 0, maxNumBatchedTokens: 1000 };
    expect(rankBusyReason(t, { activePrefillTokensThreshold: 800 })).toMatch(/900 > 800/);
    expect(rankBusyReason(t, { activePrefillTokensThresholdFrac: 0.8 })).toMatch(/0.8 × 1000/);
    expect(rankBusyReason(t, { activePrefillTokensThresholdFrac: 0.95 })).toBeNull();
    expect(
      rankBusyReason(
        { activeBlocks: 95, activePrefillTokens: 0, kvTotalBlocks: 100 },
        { activeDecodeBlocksThreshold: 0.9 },
      ),
    ).toMatch(/decode blocks/);
    expect(rankBusyReason({ activeBlocks: 95, activePrefillTokens: 0 }, { busyThreshold: 0.1 })).toBeNull();
  });

  it("drops overlap credit and KV reuse on the decode side of a disaggregated request", () => {
    const pool = new WorkerPool({ blockSize: BS });
    pool.addWorker({ workerId: 1n });
    const req = request(4, {
      overlaps: { device: new Map([[key(1), 4]]) },
      overrides: { overlapScoreCredit: 0, assumeKvReuse: false, trackPrefillTokens: false },
    });
    const e = pool.evaluate(req);
    if (e.kind !== "chosen") throw new Error("no choice");
    expect(e.chosen.overlapBlocks).toBe(4);
    expect(e.chosen.breakdown.overlapCredit).toBe(0);
    expect(e.chosen.breakdown.cost).toBe(4);
    pool.book("a", e.chosen, req);
    pool.book("b", e.chosen, req);
    expect(pool.sequences.load(key(1))).toEqual({ activeBlocks: 8, activePrefillTokens: 0, activeRequests: 2 });
  });

  it("tracks no blocks in a prefill pool and frees requests of a removed worker", () => {
    const pool = new WorkerPool({ blockSize: BS, trackActiveBlocks: false });
    pool.addWorker({ workerId: 1n });
    const req = request(4);
    const e = pool.evaluate(req);
    if (e.kind !== "chosen") throw new Error("no choice");
    pool.book("a", e.chosen, req);
    expect(pool.sequences.load(key(1))).toEqual({ activeBlocks: 0, activePrefillTokens: 64, activeRequests: 1 });
    expect(pool.removeWorker(1n)).toEqual(["a"]);
    expect(pool.sequences.has("a")).toBe(false);
    expect(pool.evaluate(req)).toMatchObject({ kind: "rejected", reason: "no_candidates" });
  });

  it("plugs in round-robin and random policies", () => {
    const rr = new WorkerPool({ blockSize: BS, picker: new RoundRobinPicker() });
    const rnd = new WorkerPool({ blockSize: BS, picker: new RandomPicker(), rng: seededRng(5) });
    for (const p of [rr, rnd]) for (let w = 1; w <= 3; w++) p.addWorker({ workerId: BigInt(w) });
    const overlaps = { device: new Map([[key(1), 4]]) };
    expect(Array.from({ length: 6 }, () => chosenKey(rr.evaluate(request(4, { overlaps }))))).toEqual([
      key(1),
      key(2),
      key(3),
      key(1),
      key(2),
      key(3),
    ]);
    const counts = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const k = chosenKey(rnd.evaluate(request(4, { overlaps })));
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    expect(counts.size).toBe(3);
    for (const c of counts.values()) expect(c).toBeGreaterThan(60);
  });

  it("plugs in least-loaded and power-of-two policies, both blind to overlap", () => {
    for (const policy of [new LeastLoadedPicker(), new PowerOfTwoPicker()]) {
      const pool = new WorkerPool({ blockSize: BS, picker: policy, rng: seededRng(9) });
      for (let w = 1; w <= 4; w++) pool.addWorker({ workerId: BigInt(w) });
      const overlaps = { device: new Map([[key(1), 4]]) };
      // Book 40 requests and free none: a load-balancing policy spreads them evenly.
      for (let i = 0; i < 40; i++) {
        const req = request(4, { overlaps });
        const e = pool.evaluate(req);
        if (e.kind !== "chosen") throw new Error("no choice");
        pool.book(`r${i}`, e.chosen, req);
      }
      const loads = [1, 2, 3, 4].map((w) => pool.sequences.load(key(w))?.activeRequests);
      if (policy.name === "least-loaded") expect(loads).toEqual([10, 10, 10, 10]);
      else for (const l of loads) expect(Math.abs((l ?? 0) - 10)).toBeLessThanOrEqual(2);
    }
    // Least loaded with unequal loads takes the lightest rank, whatever its overlap.
    const pool = new WorkerPool({ blockSize: BS, picker: new LeastLoadedPicker() });
    for (let w = 1; w <= 3; w++) pool.addWorker({ workerId: BigInt(w) });
    for (const [id, w] of [
      ["x", 1],
      ["y", 3],
    ] as const)
      pool.sequences.addRequest(id, key(w), { sequenceHashes: null, isl: 64, prefillTokens: 64 });
    const e = pool.evaluate(request(4, { overlaps: { device: new Map([[key(1), 4]]) } }));
    expect(chosenKey(e)).toBe(key(2));
  });

  it("rescore: the choice changes only when other bookings make another rank strictly cheaper", () => {
    const pool = new WorkerPool({ blockSize: BS, rng: seededRng(3) });
    for (let w = 1; w <= 3; w++) pool.addWorker({ workerId: BigInt(w) });
    // Worker 1 holds the prompt's first 3 blocks: the clear choice for a 4-block prompt.
    const e = pool.evaluate(request(4, { overlaps: { device: new Map([[key(1), 3]]) } }));
    expect(chosenKey(e)).toBe(key(1));
    if (e.kind !== "chosen") return;
    const delta = (prefillTokens: number, blocks: number) => ({ prefillTokens, blocks, requests: 1 });
    // A small booking on the chosen rank does not outweigh three cached blocks …
    expect(pool.rescore(e, new Map([[key(1), delta(BS, 1)]]))).toEqual({ changed: false, best: e.chosen.rank });
    // … a large one does, and the rescore names the rank that would have won.
    const heavy = pool.rescore(e, new Map([[key(1), delta(20 * BS, 20)]]));
    expect(heavy.changed).toBe(true);
    expect([key(2), key(3)]).toContain(heavy.best.key);
    // Load on the other ranks only makes the choice safer; no deltas, no change.
    expect(pool.rescore(e, new Map([[key(2), delta(20 * BS, 20)]])).changed).toBe(false);
    expect(pool.rescore(e, new Map()).changed).toBe(false);
    // The evaluation itself is untouched: the rescore works on a copy.
    expect(e.chosen.cost).toBe(
      pool.evaluate(request(4, { overlaps: { device: new Map([[key(1), 3]]) } })).candidates[0]!.cost,
    );
  });

  it("rescore: a pinned choice stays, whatever load the other bookings add to it", () => {
    const pool = new WorkerPool({ blockSize: BS, rng: seededRng(3) });
    for (let w = 1; w <= 3; w++) pool.addWorker({ workerId: BigInt(w) });
    const heavy = new Map([[key(1), { prefillTokens: 50 * BS, blocks: 50, requests: 1 }]]);
    for (const pinned of [{ workerId: 1n, dpRank: 0 }, { workerId: 1n }]) {
      const e = pool.evaluate(request(4, { pinned }));
      expect(e.kind === "chosen" && e.pinned).toBe(true);
      if (e.kind !== "chosen") return;
      expect(pool.rescore(e, heavy).changed).toBe(false);
    }
    // The same load on an unpinned choice of worker 1 moves it.
    const free = pool.evaluate(request(4, { overlaps: { device: new Map([[key(1), 3]]) } }));
    expect(free.kind === "chosen" && !free.pinned && pool.rescore(free, heavy).changed).toBe(true);
  });
});
