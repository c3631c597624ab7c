import { monitorEventLoopDelay } from "node:perf_hooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenizerRegistry, type Tokenizer } from "../src/index.js";
import { variedText } from "./support/corpus.js";

// Generous bounds: the machine running tests is small and shared.
const WINDOW_MS = 3000;
const IN_FLIGHT = 8;
const MAX_P99_DELAY_MS = 40;

describe("event loop while the pool tokenizes", () => {
  let registry: TokenizerRegistry;
  let tokenizer: Tokenizer;
  let prompts: string[];

  beforeAll(async () => {
    registry = new TokenizerRegistry({ threads: 1 });
    tokenizer = await registry.get("Qwen/Qwen3-0.6B");
    prompts = Array.from({ length: IN_FLIGHT }, (_, i) => variedText(i + 1, 150_000));
  });

  afterAll(async () => {
    await registry.close();
  });

  it("keeps the caller's event-loop delay low with 32k-token prompts in flight continuously", async () => {
    const histogram = monitorEventLoopDelay({ resolution: 10 });
    histogram.enable();
    const deadline = performance.now() + WINDOW_MS;
    let completed = 0;
    let smallest = Number.POSITIVE_INFINITY;
    const lane = async (prompt: string) => {
      while (performance.now() < deadline) {
        const { tokenIds } = await tokenizer.tokenizeRequest("completions", { prompt });
        smallest = Math.min(smallest, tokenIds.length);
        completed++;
      }
    };
    await Promise.all(prompts.map(lane));
    histogram.disable();
    const p99 = histogram.percentile(99) / 1e6;
    expect(smallest).toBeGreaterThanOrEqual(32_000);
    expect(completed).toBeGreaterThanOrEqual(IN_FLIGHT);
    expect(p99).toBeLessThan(MAX_P99_DELAY_MS);
  });
});
