import { monitorEventLoopDelay } from "node:perf_hooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenizerRegistry, type Tokenizer } from "../src/index.js";
import { variedText } from "./support/corpus.js";

const WINDOW_MS = 3000;
const IN_FLIGHT = 8;
const RESOLUTION_MS = 5;

/** How long tokenizing every in-flight prompt once blocks the thread that does it (median of 3). */
function inlineBatchMs(tokenizer: Tokenizer, prompts: readonly string[]): number {
  const times = [0, 1, 2].map(() => {
    const started = performance.now();
    for (const prompt of prompts) tokenizer.tokenizeRequestSync("completions", { prompt });
    return performance.now() - started;
  });
  return times.sort((a, b) => a - b)[1]!;
}

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

  // Relative bound, so it holds on a loaded machine: tokenizing on this thread would delay its timers
  // by about a whole batch; on the pool they are late by a fraction of that.
  it("keeps the caller's event-loop delay far below the work done on its behalf", async () => {
    const batchMs = inlineBatchMs(tokenizer, prompts);
    const histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
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
    const delayP99 = histogram.percentile(99) / 1e6 - RESOLUTION_MS;
    expect(smallest).toBeGreaterThanOrEqual(32_000);
    expect(completed).toBeGreaterThanOrEqual(IN_FLIGHT);
    expect(delayP99, `p99 delay ${delayP99.toFixed(1)} ms, inline batch ${batchMs.toFixed(1)} ms`).toBeLessThan(
      batchMs / 2,
    );
  });
});
