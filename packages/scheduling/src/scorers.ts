import { costInto, type CostInputs } from "./cost.js";
import { BLOCKS, DEVICE, DISK, HOST, NEW, PREFILL, REQUESTS } from "./score-table.js";
import type { CandidateTable, Scorer } from "./types.js";

/** Breakdown written and discarded while scoring (only the cost is kept per candidate). */
const scratch = { rawPrefillBlocks: 0, overlapCredit: 0, prefillBlocks: 0, decodeBlocks: 0, cost: 0 };

/**
 * Dynamo's cost function as a scorer: prefill work left after the overlap credit plus decode blocks
 * (see `cost.ts`), with the table's request-level context (block size, overrides, credit decay baseline).
 * Allocates nothing per candidate.
 */
export class KvCostScorer implements Scorer {
  readonly name = "kv-cost";
  private readonly inputs: { -readonly [K in keyof CostInputs]: number } = {
    deviceOverlapBlocks: 0,
    hostOverlapBlocks: 0,
    diskOverlapBlocks: 0,
    activePrefillTokens: 0,
    activeBlocks: 0,
    newBlocks: 0,
    activeRequests: 0,
  };

  score(table: CandidateTable, i: number): number {
    const inputs = this.inputs;
    inputs.deviceOverlapBlocks = table.get(DEVICE, i);
    inputs.hostOverlapBlocks = table.get(HOST, i);
    inputs.diskOverlapBlocks = table.get(DISK, i);
    inputs.activePrefillTokens = table.get(PREFILL, i);
    inputs.activeBlocks = table.get(BLOCKS, i);
    inputs.activeRequests = table.get(REQUESTS, i);
    inputs.newBlocks = table.get(NEW, i);
    return costInto(scratch, table.context.request, inputs, table.context.params);
  }
}
