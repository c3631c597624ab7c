import { describe, expect, it } from "vitest";
import { Engine, RealtimeDriver, systemClock, type KvEventBatch, type RequestResult } from "../src/index.js";
import { tokens } from "./support.js";

function finished(id: string, sink: Map<string, RequestResult>) {
  return (r: RequestResult) => sink.set(id, r);
}

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > timeoutMs) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

describe("RealtimeDriver", () => {
  it("streams each token no earlier than its modelled time, on the system clock", async () => {
    const engine = new Engine({ speedupRatio: 20 }, systemClock);
    const driver = new RealtimeDriver([engine]);
    const results = new Map<string, RequestResult>();
    const lateness: number[] = [];
    const indices: number[] = [];
    engine.addRequest({
      id: "s",
      tokens: tokens(2000),
      maxTokens: 8,
      onToken: (t) => {
        lateness.push(systemClock.now() - t.timeMs);
        indices.push(t.index);
      },
      onFinish: finished("s", results),
    });
    await until(() => results.has("s"));
    driver.stop();
    expect(indices).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(lateness.every((l) => l >= 0)).toBe(true);
    const r = results.get("s")!;
    expect(r.ttftMs).toBeGreaterThan(0);
    expect(systemClock.now()).toBeGreaterThanOrEqual(r.endMs);
  });

  it("a client that goes away mid-stream frees its blocks, which the next request finds cached", async () => {
    const batches: KvEventBatch[] = [];
    const engine = new Engine({ speedupRatio: 10, onKvEvents: (b) => batches.push(b) }, systemClock);
    const driver = new RealtimeDriver([engine]);
    const results = new Map<string, RequestResult>();
    const prompt = tokens(1000);
    let streamed = 0;
    engine.addRequest({
      id: "gone",
      tokens: prompt,
      maxTokens: 1000,
      onToken: () => streamed++,
      onFinish: finished("gone", results),
    });
    await until(() => streamed >= 3);
    expect(engine.cancel("gone")).toBe(true);
    expect(results.get("gone")!.reason).toBe("cancelled");
    expect(engine.load()).toMatchObject({ running: 0, activeBlocks: 0 });
    engine.addRequest({ id: "next", tokens: prompt, maxTokens: 2, onFinish: finished("next", results) });
    await until(() => results.has("next"));
    driver.stop();
    expect(results.get("next")!.cachedTokens).toBe(960);
    expect(batches.length).toBeGreaterThan(0);
  });

  it("a request arriving during a run of fast-forwarded decode steps joins at the next step boundary", async () => {
    const engine = new Engine({ speedupRatio: 20 }, systemClock); // decode steps of about 0.3 ms
    const driver = new RealtimeDriver([engine]);
    const results = new Map<string, RequestResult>();
    engine.addRequest({ id: "long", tokens: tokens(100), maxTokens: 2000, onFinish: finished("long", results) });
    await new Promise((resolve) => setTimeout(resolve, 20));
    const arrival = systemClock.now();
    engine.addRequest({ id: "late", tokens: tokens(100, 5000), maxTokens: 2, onFinish: finished("late", results) });
    await until(() => results.has("late") && results.has("long"));
    driver.stop();
    const long = results.get("long")!;
    const late = results.get("late")!;
    expect(late.scheduledMs).toBeGreaterThanOrEqual(arrival);
    expect(late.endMs).toBeLessThan(long.endMs); // it did not wait for the 2000-token run to end
    // Within the decode step in flight (0.3 ms of model time), not at the end of the run of steps
    // fast-forwarded up to the next block boundary (64 steps, about 19 ms).
    expect(late.scheduledMs! - arrival).toBeLessThan(5);
  });

  it("stop() leaves no timer behind", async () => {
    const engine = new Engine({ speedupRatio: 0.001 }, systemClock); // a first step of about 20 s
    const armed: unknown[] = [];
    const cleared: unknown[] = [];
    const driver = new RealtimeDriver([engine], {
      timers: {
        setTimeout: (cb, ms) => {
          const h = setTimeout(cb, ms);
          armed.push(h);
          return h;
        },
        clearTimeout: (h) => {
          cleared.push(h);
          clearTimeout(h as ReturnType<typeof setTimeout>);
        },
      },
    });
    engine.addRequest({ id: "slow", tokens: tokens(100), maxTokens: 1 });
    await until(() => armed.length >= 2); // the step began; its end is armed
    driver.stop();
    expect(cleared).toContain(armed.at(-1));
    expect(() => driver.add(engine)).toThrow(/stopped/);
  });
});
