import { classicCost } from "../cost.js";
import type { Picker, PolicyChoice, PolicyRequest, ScoredCandidate } from "../types.js";

/**
 * Dynamo's 2025 router: `cost = weight · (active prefill + uncached prompt tokens) / bs + active blocks
 * + new blocks` (`classicCost`), lowest cost wins, ties to the first candidate in registration order
 * (the 2025 code took the smallest radix tree, then map order; tree sizes are not a candidate number).
 */
export class DynamoClassicPicker implements Picker {
  readonly name = "dynamo-classic";

  constructor(
    private readonly blockSize: number,
    private readonly overlapScoreWeight = 1,
  ) {}

  choose(request: PolicyRequest, candidates: readonly ScoredCandidate[]): PolicyChoice {
    const req = { isl: request.isl, blockSize: this.blockSize };
    let best = 0;
    let bestCost = Infinity;
    candidates.forEach((c, i) => {
      const cost = classicCost(
        req,
        {
          deviceOverlapBlocks: c.overlapBlocks,
          hostOverlapBlocks: 0,
          diskOverlapBlocks: 0,
          activePrefillTokens: c.load.activePrefillTokens,
          activeBlocks: c.load.activeBlocks,
          newBlocks: c.newBlocks,
          activeRequests: c.load.activeRequests,
        },
        this.overlapScoreWeight,
      );
      if (cost < bestCost) {
        bestCost = cost;
        best = i;
      }
    });
    return { index: best, reason: `lowest classic cost ${+bestCost.toFixed(3)}` };
  }
}
