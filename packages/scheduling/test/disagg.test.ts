import { seededRng } from "@dynamo/primitives";
import { computeSequenceHashes, workerRankKey } from "@dynamo/kv-indexer";
import { describe, expect, it } from "vitest";
import { DisaggPlanner, WorkerPool, type PlanRequest } from "../src/index.js";

const BS = 16;
const key = (w: number, r = 0) => workerRankKey(BigInt(w), r);
const request = (blocks: number, extra: Partial<PlanRequest> = {}): PlanRequest => ({
  isl: blocks * BS,
  sequenceHashes: computeSequenceHashes(BigUint64Array.from({ length: blocks }, (_, i) => BigInt(i + 1))),
  ...extra,
});

function setup(
  options: {
    prefillWorkers?: number[];
    decodeWorkers?: number[];
    enforceDisagg?: boolean;
    kvTotalBlocks?: number;
  } = {},
) {
  const prefill = new WorkerPool({
    blockSize: BS,
    trackActiveBlocks: false,
    rng: seededRng(1),
    busy: { activePrefillTokensThreshold: 100 },
  });
  const decode = new WorkerPool({ blockSize: BS, rng: seededRng(2) });
  for (const w of options.prefillWorkers ?? [1, 2]) prefill.addWorker({ workerId: BigInt(w) });
  for (const w of options.decodeWorkers ?? [10, 11]) decode.addWorker({ workerId: BigInt(w) });
  return { prefill, decode, planner: new DisaggPlanner({ prefill, decode, enforceDisagg: options.enforceDisagg }) };
}

describe("DisaggPlanner", () => {
  it("picks prefill by KV overlap and decode by load alone, booking both", () => {
    const { prefill, decode, planner } = setup();
    decode.sequences.addRequest("busy", key(11), { privateBlocks: 50, isl: 800, prefillTokens: 0 });
    // Decode worker 11 holds the prefix: no credit on the decode side, so the idle worker 10 wins.
    const overlaps = {
      device: new Map([
        [key(2), 4],
        [key(11), 4],
      ]),
    };
    const plan = planner.planAndBook("r1", request(4, { overlaps }));
    expect(plan.kind).toBe("disaggregated");
    if (plan.kind !== "disaggregated") return;
    expect(plan.prefill.chosen.rank.key).toBe(key(2));
    expect(plan.decode.chosen.rank.key).toBe(key(10));
    expect(plan.decode.chosen.breakdown.overlapCredit).toBe(0);
    expect(prefill.sequences.load(key(2))).toEqual({ activeBlocks: 0, activePrefillTokens: 0, activeRequests: 1 });
    expect(decode.sequences.load(key(10))).toEqual({ activeBlocks: 4, activePrefillTokens: 0, activeRequests: 1 });
  });

  it("books neither side when the decode booking fails after the prefill one", () => {
    const { prefill, decode, planner } = setup();
    const plan = planner.plan(request(4));
    if (plan.kind !== "disaggregated") throw new Error(`expected a disaggregated plan, got ${plan.kind}`);
    // The chosen decode worker disappears between planning and booking.
    decode.removeWorker(plan.decode.chosen.rank.workerId);
    expect(planner.book("r1", plan, request(4))).toBe(false);
    expect(prefill.sequences.has("r1")).toBe(false);
    expect(prefill.sequences.load(plan.prefill.chosen.rank.key)).toMatchObject({ activeRequests: 0 });
    expect(decode.sequences.has("r1")).toBe(false);
  });

  it("falls back to aggregated routing with full KV scoring when no prefill worker can take the request", () => {
    const { prefill, planner } = setup({ prefillWorkers: [] });
    const overlaps = { device: new Map([[key(11), 4]]) };
    const plain = planner.planAndBook("a", request(4, { overlaps }));
    expect(plain).toMatchObject({ kind: "aggregated", fallback: false });
    expect(plain.kind === "aggregated" && plain.decode.chosen.rank.key).toBe(key(11));
    prefill.addWorker({ workerId: 1n });
    prefill.sequences.addRequest("hog", key(1), { isl: 500, prefillTokens: 500 });
    const busy = planner.planAndBook("b", request(4));
    expect(busy).toMatchObject({
      kind: "aggregated",
      fallback: true,
      prefill: { kind: "rejected", reason: "overloaded" },
    });
    prefill.removeWorker(1n);
    expect(planner.plan(request(4))).toMatchObject({ kind: "aggregated", fallback: true });
  });

  it("fails with prefill_unavailable when disaggregation is enforced", () => {
    const none = setup({ prefillWorkers: [], enforceDisagg: true });
    expect(none.planner.planAndBook("a", request(4))).toMatchObject({
      kind: "rejected",
      reason: "prefill_unavailable",
    });
    expect(none.decode.sequences.size).toBe(0);
    const busy = setup({ prefillWorkers: [1], enforceDisagg: true });
    busy.prefill.sequences.addRequest("hog", key(1), { isl: 500, prefillTokens: 500 });
    const plan = busy.planner.planAndBook("b", request(4));
    expect(plan).toMatchObject({ kind: "rejected", reason: "prefill_unavailable" });
    expect(plan.kind === "rejected" && plan.message).toMatch(/busy/);
  });

  it("books nothing when either side cannot be booked", () => {
    const noDecode = setup({ decodeWorkers: [] });
    expect(noDecode.planner.planAndBook("a", request(4))).toMatchObject({ kind: "rejected", reason: "no_candidates" });
    expect(noDecode.prefill.sequences.size).toBe(0);
    const dup = setup();
    dup.decode.sequences.addRequest("x", key(10), { isl: 16, prefillTokens: 0 });
    expect(dup.planner.planAndBook("x", request(4))).toMatchObject({ kind: "rejected", reason: "duplicate_request" });
    expect(dup.prefill.sequences.size).toBe(0);
    expect(dup.decode.sequences.size).toBe(1);
  });

  it("pins each side independently", () => {
    const { planner } = setup();
    const plan = planner.plan(
      request(4, { pinnedPrefill: { workerId: 1n, dpRank: 0 }, pinned: { workerId: 11n, dpRank: 0 } }),
    );
    expect(plan.kind === "disaggregated" && [plan.prefill.chosen.rank.key, plan.decode.chosen.rank.key]).toEqual([
      key(1),
      key(11),
    ]);
  });
});
