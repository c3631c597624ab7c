import { describe, expect, it } from "vitest";
import { kvTransferMs, polynomialDecodeMs, polynomialPrefillMs, type BlockStoredEvent } from "../src/index.js";
import { simulated, tokens } from "./support.js";

const TRANSFER_MS = kvTransferMs(1000, 131_072, 64, 1); // 2.048 ms

describe("disaggregated serving", () => {
  it("a prefill engine computes the prompt, returns one token and holds the blocks for the transfer", () => {
    const { loop, results, submit, engine } = simulated({ disaggregationMode: "prefill" });
    submit("p", tokens(1000), 50);
    loop.advanceTo(polynomialPrefillMs(1000) + 0.001);
    const r = results.get("p")!;
    expect(r).toMatchObject({ reason: "transferred", outputTokens: 1, cachedTokens: 0 });
    expect(r.ttftMs).toBeCloseTo(polynomialPrefillMs(1000), 9);
    expect(r.transferMs).toBeCloseTo(TRANSFER_MS, 9);
    expect(r.transferBlockIds).toHaveLength(16);
    expect(engine.load().activeBlocks).toBe(16); // held for the decode side
    expect(engine.unfinished).toBe(0);
    loop.runUntilIdle();
    expect(loop.now()).toBeCloseTo(r.endMs + TRANSFER_MS, 9);
    expect(engine.load()).toMatchObject({ activeBlocks: 0, cachedBlocks: 15 });
  });

  it("a decode engine allocates and announces the prompt's blocks on arrival and decodes after the transfer", () => {
    const { loop, results, submit, engine, batches } = simulated({ disaggregationMode: "decode" });
    submit("d", tokens(1000), 3);
    loop.advanceTo(1);
    expect(engine.requestState("d")).toMatchObject({ status: "transferring", computedTokens: 999 });
    expect(engine.load()).toMatchObject({ waiting: 1, running: 0, activeBlocks: 16 });
    const stored = batches.flatMap((b) => b.events) as BlockStoredEvent[];
    expect(batches[0]!.ts).toBe(0);
    expect(stored.flatMap((e) => e.blockHashes)).toHaveLength(15);
    loop.runUntilIdle();
    const r = results.get("d")!;
    const decode = polynomialDecodeMs(16 / 16_384);
    expect(r).toMatchObject({ reason: "length", outputTokens: 3 });
    expect(r.ttftMs).toBeCloseTo(TRANSFER_MS + decode, 9);
    expect(r.meanItlMs).toBeCloseTo(decode, 9);
  });

  it("a decode engine still reuses its own cached prefix, and a request may opt out of the transfer", () => {
    const { loop, results, submit } = simulated({ disaggregationMode: "decode" });
    submit("local", tokens(1000), 1, { kvTransfer: null });
    loop.runUntilIdle();
    expect(results.get("local")!.ttftMs).toBeCloseTo(polynomialPrefillMs(1000), 9);
    submit("remote", tokens(1000), 1);
    loop.runUntilIdle();
    expect(results.get("remote")!.cachedTokens).toBe(960);
  });

  it("a transferred request holding its blocks starts before a preempted one is recomputed (no livelock)", () => {
    const { loop, results, submit, engine } = simulated({
      disaggregationMode: "decode",
      numGpuBlocks: 65,
      blockSize: 4,
      maxNumSeqs: 1,
      maxNumBatchedTokens: 8,
    });
    // "small" (its KV arrives first) runs first and needs 46 blocks while "big" holds 23 of the 65: it
    // is preempted. Recomputed at once, it would hit the same wall forever; "big" must go first.
    submit("big", tokens(92), 110);
    submit("small", tokens(57, 5000), 126);
    loop.runUntilIdle(1e7);
    expect(results.get("big")).toMatchObject({ reason: "length", outputTokens: 110, preemptions: 0 });
    expect(results.get("small")).toMatchObject({ reason: "length", outputTokens: 126, preemptions: 1 });
    expect(results.get("big")!.endMs).toBeLessThan(results.get("small")!.endMs);
    expect(engine.load().activeBlocks).toBe(0);
  });
});
