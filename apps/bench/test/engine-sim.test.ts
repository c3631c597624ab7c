import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { bench } from "../src/benches/engine-sim.js";
import { Progress } from "../src/framework.js";

const root = fileURLToPath(new URL("../../..", import.meta.url));

describe("engine-sim benchmark", () => {
  it("replays the head of the Mooncake trace and reports the figures it promises", async () => {
    const result = await bench.run({
      args: ["--limit", "150", "--compare-limit", "60", "--compare-rounds", "1", "--workers", "2"],
      json: true,
      progress: new Progress("engine-sim test"),
      root,
    });
    const f = result.figures as Record<string, unknown>;
    expect(f.requests).toBe(150);
    expect(f.simulatedRequestsPerSec).toBeGreaterThan(0);
    expect(f.traceSeconds).toBeGreaterThan(0);
    expect(f.generatedTokens).toBeGreaterThan(150);
    expect(f.steps as number).toBeGreaterThan(f.loopEvents as number); // decode steps were fast-forwarded
    expect((f.sideBySide as Array<{ requests: number }>).map((s) => s.requests)).toEqual([60, 60, 60]);
    expect(result.markdown).toContain("Target: the whole trace (150 requests, 2 workers)");
    expect(result.charts).toHaveLength(2);
  });
});
