import { RouterEvents, computeBlockHashes, computeSequenceHashes, type StorageTier } from "@dynamo/kv-indexer";
import { seededRng } from "@dynamo/primitives";
import { describe, expect, it } from "vitest";
import { KvRouter, type RouteResult } from "../src/index.js";
import { BS, prompt } from "./helpers.js";

function routed(r: RouteResult) {
  if (r.kind !== "routed") throw new Error(`rejected: ${r.reason}: ${r.message}`);
  return r;
}

/** A 64-block (1,024-token) prompt and the events that put its blocks `[from, to)` on a tier. */
const tokens = prompt(64, 3, 0);
const local = computeBlockHashes(tokens, BS);
const engine = computeSequenceHashes(local);
function run(workerId: bigint, eventId: bigint, from: number, to: number, tier: StorageTier = "device") {
  const blocks = [];
  for (let i = from; i < to; i++) blocks.push({ blockHash: engine[i]!, tokensHash: local[i]! });
  return RouterEvents.stored({ workerId, dpRank: 0 }, eventId, from === 0 ? null : engine[from - 1]!, blocks, tier);
}

describe("lower storage tiers", () => {
  // Before: the host run (parent only on the device tier) was rejected as parent-not-found, worker 1
  // got no host credit and cost 112 against worker 2's 92. After: 88 against 92, worker 1 wins.
  it("credits host hits as a continuation of the device match (88 vs 92: worker 1 wins)", () => {
    const kv = new KvRouter({ blockSize: BS, rng: seededRng(1) });
    kv.addWorker({ workerId: 1n });
    kv.addWorker({ workerId: 2n });
    expect(kv.applyEvent(run(1n, 0n, 0, 16))).toBe("applied");
    expect(kv.applyEvent(run(1n, 1n, 16, 48, "host_pinned"))).toBe("applied");
    expect(kv.applyEvent(run(2n, 0n, 0, 36))).toBe("applied");
    const d = routed(kv.route({ tokens, queryOnly: true }));
    const [w1, w2] = [1n, 2n].map((id) => d.explain.decode.find((c) => c.workerId === id)!);
    expect(w1).toMatchObject({ overlapBlocks: 16, hostOverlapBlocks: 32, prefillBlocks: 24, cost: 88 });
    expect(w2).toMatchObject({ overlapBlocks: 36, hostOverlapBlocks: 0, prefillBlocks: 28, cost: 92 });
    expect(d.worker.workerId).toBe(1n);
  });

  it("counts disk hits after the host continuation, and only consecutive ones", () => {
    const kv = new KvRouter({ blockSize: BS, rng: seededRng(1) });
    kv.addWorker({ workerId: 1n });
    kv.applyEvent(run(1n, 0n, 0, 8));
    kv.applyEvent(run(1n, 1n, 8, 16, "host_pinned"));
    kv.applyEvent(run(1n, 2n, 16, 24, "disk"));
    kv.applyEvent(run(1n, 3n, 30, 40, "disk")); // parent 29 is nowhere: rejected
    kv.applyEvent(run(1n, 4n, 0, 12, "host_pinned")); // host copies of device blocks add nothing beyond them
    const d = routed(kv.route({ tokens, queryOnly: true }));
    expect(d.explain.decode[0]).toMatchObject({ overlapBlocks: 8, hostOverlapBlocks: 8, diskOverlapBlocks: 8 });
    expect(kv.index!.tier("disk")!.errorCounts.parent_not_found).toBe(1);
  });

  // Before: booked prefill = isl − device·bs = 1024 − 256 = 768. After: 1024 − round((16 + 0.75·32)·16) = 384.
  it("books the prefill backlog net of the weighted lower-tier hits", () => {
    const kv = new KvRouter({ blockSize: BS, rng: seededRng(1) });
    kv.addWorker({ workerId: 1n });
    kv.applyEvent(run(1n, 0n, 0, 16));
    kv.applyEvent(run(1n, 1n, 16, 48, "host_pinned"));
    kv.applyEvent(run(1n, 2n, 48, 52, "disk"));
    routed(kv.route({ tokens, requestId: "a" }));
    // 1024 − round((16 + 0.75·32 + 0.25·4) · 16) = 1024 − 656
    expect(kv.load({ workerId: 1n, dpRank: 0 })!.activePrefillTokens).toBe(368);
    const weighted = new KvRouter({ blockSize: BS, rng: seededRng(1), hostCacheHitWeight: 0.5, diskCacheHitWeight: 0 });
    weighted.addWorker({ workerId: 1n });
    weighted.applyEvent(run(1n, 0n, 0, 16));
    weighted.applyEvent(run(1n, 1n, 16, 47, "host_pinned"));
    routed(weighted.route({ tokens, requestId: "a" }));
    // 1024 − round((16 + 0.5·31) · 16) = 1024 − 504
    expect(weighted.load({ workerId: 1n, dpRank: 0 })!.activePrefillTokens).toBe(520);
  });
});
