import { seededRng } from "@dynamo/primitives";
import { describe, expect, it } from "vitest";
import { KvRouter, type RouteResult } from "../src/index.js";
import { BS, prompt, storedEvent } from "./helpers.js";

function routed(r: RouteResult) {
  if (r.kind !== "routed") throw new Error(`rejected: ${r.reason}: ${r.message}`);
  return r;
}

/** Two workers; worker 1 holds adapter `a` and has cached the prompt under it, worker 2 the base-model blocks. */
function twoWorkers(settings: Record<string, unknown> = {}) {
  const kv = new KvRouter({ blockSize: BS, rng: seededRng(1), ...settings });
  kv.addWorker({ workerId: 1n });
  kv.addWorker({ workerId: 2n });
  const tokens = prompt(8, 1, 0);
  kv.noteAdapter(1n, "a");
  kv.applyEvent(storedEvent(1n, 0, 0n, tokens, "device", { loraName: "a" }));
  kv.applyEvent(storedEvent(2n, 0, 0n, tokens));
  return { kv, tokens };
}

describe("LoRA-aware routing", () => {
  // Before: no router knew which worker held an adapter, so an adapter request went wherever the cost
  // was lowest, including workers that do not serve it. After: only holders are candidates.
  it("base and adapter requests with the same text match only their own blocks; adapter requests go to the holder", () => {
    const { kv, tokens } = twoWorkers();
    const base = routed(kv.route({ tokens, queryOnly: true }));
    expect(base.worker.workerId).toBe(2n);
    expect(base.explain.decode.find((c) => c.workerId === 1n)!.overlapBlocks).toBe(0);
    expect(base.explain.decode.find((c) => c.workerId === 2n)!.overlapBlocks).toBe(8);
    const adapter = routed(kv.route({ tokens, loraName: "a", queryOnly: true }));
    expect(adapter.worker.workerId).toBe(1n);
    expect(adapter.overlapBlocks).toBe(8);
    expect(adapter.explain.decode.map((c) => c.workerId)).toEqual([1n]);
    // Even loaded, the holder keeps the adapter's requests (worker 2 would have to load it).
    for (let i = 1; i <= 4; i++) routed(kv.route({ tokens: prompt(8, 9, i, 0), loraName: "a" }));
    expect(routed(kv.route({ tokens, loraName: "a", queryOnly: true })).worker.workerId).toBe(1n);
  });

  it("when no worker holds the adapter, the cheapest worker with room takes it at DYN_ROUTER_LORA_LOAD_PENALTY_TOKENS extra cost, and then holds it", () => {
    const { kv } = twoWorkers({ loraLoadPenaltyTokens: 1600 });
    routed(kv.route({ tokens: prompt(8, 5, 1, 0), requestId: "busy" })); // load on one worker
    const tokens = prompt(8, 7, 2, 0);
    const plain = routed(kv.route({ tokens, queryOnly: true }));
    const idle = plain.worker.workerId;
    const d = routed(kv.route({ tokens, loraName: "b", requestId: "b1" }));
    expect(d.worker.workerId).toBe(idle);
    // Penalty 1600 tokens / 16 = 100 cost units on top of the ordinary cost, on every worker that must load it.
    for (const c of d.explain.decode)
      expect(c.cost).toBe(plain.explain.decode.find((p) => p.workerId === c.workerId)!.cost + 100);
    expect(kv.adaptersOf(idle)).toEqual(["b"]);
    expect(routed(kv.route({ tokens, loraName: "b", queryOnly: true })).explain.decode.map((c) => c.workerId)).toEqual([
      idle,
    ]);
  });

  it("skips workers whose adapter slots are full (DYN_ROUTER_LORA_MAX_PER_WORKER) and refuses when loading is off", () => {
    const { kv, tokens } = twoWorkers({ loraMaxPerWorker: 1 });
    routed(kv.route({ tokens: prompt(8, 5, 1, 0), requestId: "busy", allowedWorkers: [2n] }));
    // Worker 2 is busier, but worker 1's only slot holds `a`: `c` goes to worker 2.
    expect(routed(kv.route({ tokens, loraName: "c", queryOnly: true })).worker.workerId).toBe(2n);
    const strict = twoWorkers({ loraAllowLoad: false }).kv;
    const refused = strict.route({ tokens, loraName: "c" });
    expect(refused).toMatchObject({ kind: "rejected", reason: "no_candidates" });
    expect((refused as { message: string }).message).toMatch(/DYN_ROUTER_LORA_ALLOW_LOAD/);
  });
});
