import { describe, expect, it } from "vitest";
import { polynomialPrefillMs, type BlockStoredEvent } from "../src/index.js";
import { simulated, tokens } from "./support.js";

describe("LoRA adapters", () => {
  it("salts an adapter's blocks: the same prompt under another adapter is a miss", () => {
    const { loop, results, submit, batches } = simulated({ maxLoras: 2 });
    const prompt = tokens(1000);
    const run = (id: string, loraName: string | null) => {
      submit(id, prompt, 1, { loraName });
      loop.runUntilIdle();
      loop.advanceTo(loop.now() + 1000);
      return results.get(id)!.cachedTokens;
    };
    expect(run("base", null)).toBe(0);
    expect(run("alice", "alice")).toBe(0);
    expect(run("bob", "bob")).toBe(0);
    expect(run("alice-again", "alice")).toBe(960);
    expect(run("base-again", null)).toBe(960);
    const stored = batches.flatMap((b) => b.events).filter((e): e is BlockStoredEvent => e.type === "BlockStored");
    expect(stored.map((e) => e.loraName)).toEqual([null, "alice", "bob"]);
    const hashes = new Set(stored.flatMap((e) => e.blockHashes));
    expect(hashes.size).toBe(3 * 15);
  });

  it("loading an adapter that is not resident costs its load time once", () => {
    const { loop, results, submit, engine } = simulated({ loraLoadTimeMs: 40 });
    submit("a", tokens(512), 1, { loraName: "alice" });
    loop.runUntilIdle();
    submit("b", tokens(512, 9000), 1, { loraName: "alice" });
    loop.runUntilIdle();
    expect(results.get("a")!.ttftMs).toBeCloseTo(polynomialPrefillMs(512) + 40, 9);
    expect(results.get("b")!.ttftMs).toBeCloseTo(polynomialPrefillMs(512), 9);
    expect(engine.stats().loraLoads).toBe(1);
    expect(engine.loadedLoras).toEqual(["alice"]);
  });

  it("a step serves at most max_loras adapters; the others wait, and the least recently used adapter is unloaded", () => {
    const { loop, results, submit, engine } = simulated({ maxLoras: 1, loraLoadTimeMs: 10 });
    submit("a", tokens(100), 5, { loraName: "alice" });
    submit("b", tokens(100, 5000), 5, { loraName: "bob" });
    submit("c", tokens(100, 9000), 5, { loraName: "alice" });
    loop.advanceTo(1);
    expect(engine.load()).toMatchObject({ running: 2, waiting: 1, runningLoras: ["alice"], waitingLoras: ["bob"] });
    loop.runUntilIdle();
    const a = results.get("a")!;
    expect(results.get("c")!.scheduledMs).toBe(0);
    expect(results.get("b")!.scheduledMs).toBeCloseTo(a.endMs, 9);
    expect(engine.loadedLoras).toEqual(["bob"]);
    expect(engine.stats().loraLoads).toBe(2);
  });

  it("with max_loras 2 both adapters run together", () => {
    const { loop, results, submit } = simulated({ maxLoras: 2 });
    submit("a", tokens(100), 5, { loraName: "alice" });
    submit("b", tokens(100, 5000), 5, { loraName: "bob" });
    loop.runUntilIdle();
    expect(results.get("b")!.scheduledMs).toBe(0);
  });
});
