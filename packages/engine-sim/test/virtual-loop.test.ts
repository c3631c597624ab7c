import { describe, expect, it } from "vitest";
import { Engine, VirtualClock, VirtualLoop, polynomialPrefillMs, type RequestResult } from "../src/index.js";
import { tokens } from "./support.js";

describe("VirtualLoop", () => {
  it("processes the events of many engines in time order on one clock", () => {
    const loop = new VirtualLoop();
    const seen: Array<[number, number, number]> = [];
    const engines = [0, 1, 2].map(
      (i) =>
        new Engine({ speedupRatio: i + 1, onKvEvents: (b) => seen.push([i, b.ts * 1000, loop.now()]) }, loop.clock),
    );
    loop.add(...engines);
    engines.forEach((e, i) => e.addRequest({ id: `r${i}`, tokens: tokens(640), maxTokens: 1 }));
    expect(loop.nextEventTime()).toBe(0);
    loop.runUntilIdle();
    expect(seen.map(([i]) => i)).toEqual([2, 1, 0]); // the fastest engine's step ends first
    for (const [i, ts, now] of seen) {
      expect(ts).toBe(now);
      expect(ts).toBeCloseTo(polynomialPrefillMs(640) / (i + 1), 9);
    }
    expect(loop.nextEventTime()).toBe(Infinity);
  });

  it("advanceTo stops short of its target: an arrival there joins the step that starts there", () => {
    const loop = new VirtualLoop();
    const engine = new Engine({}, loop.clock);
    loop.add(engine);
    const results: RequestResult[] = [];
    const onFinish = (r: RequestResult) => results.push(r);
    engine.addRequest({ id: "a", tokens: tokens(512), maxTokens: 1, onFinish });
    const end = polynomialPrefillMs(512);
    loop.advanceTo(end);
    expect(results).toEqual([]); // the step ending exactly at `end` has not been processed
    engine.addRequest({ id: "b", tokens: tokens(512, 9000), maxTokens: 1, onFinish });
    loop.runUntilIdle();
    expect(results.map((r) => r.requestId)).toEqual(["a", "b"]);
    expect(results[1]!.scheduledMs).toBe(end);
  });

  it("lets a finish callback submit to another engine (a prefill → decode handoff)", () => {
    const loop = new VirtualLoop();
    const prefill = new Engine({ disaggregationMode: "prefill" }, loop.clock);
    const decode = new Engine({ disaggregationMode: "decode" }, loop.clock);
    loop.add(prefill, decode);
    const prompt = tokens(2000);
    let done: RequestResult | undefined;
    prefill.addRequest({
      id: "x",
      tokens: prompt,
      maxTokens: 10,
      onFinish: () => decode.addRequest({ id: "x", tokens: prompt, maxTokens: 10, onFinish: (r) => (done = r) }),
    });
    loop.runUntilIdle();
    expect(done).toMatchObject({ reason: "length", outputTokens: 10 });
    expect(done!.arrivalMs).toBeCloseTo(polynomialPrefillMs(2000), 9);
  });

  it("refuses engines on another clock and a clock moving backwards", () => {
    const loop = new VirtualLoop();
    expect(() => loop.add(new Engine({}, new VirtualClock()))).toThrow(/clock/);
    loop.advanceTo(10);
    expect(() => loop.clock.set(5)).toThrow(RangeError);
  });
});
