import type { StepPlan } from "./scheduler.js";
import type { TimeMs } from "./types.js";

/**
 * How many steps in a row will be exactly like the one just planned, so that the engine can run them
 * as one event (1 when the plan cannot be repeated).
 *
 * A planned step repeats unchanged while every scheduled request only decodes: no prompt token left,
 * no adapter to load, no KV transfer to admit, nobody preempted (so admission, which found nothing to
 * admit, would find nothing again), no request finishing before the last step, no block to allocate or
 * to announce as full after the first step, no timer (KV transfer) firing before the last step ends,
 * and nobody streaming tokens (streamed tokens must be delivered step by step). Then the KV-cache
 * fill, hence the step duration, stays the same. Arrivals and cancellations are not known ahead: the
 * engine cuts the run short at the step boundary that follows them.
 */
export function repeatableSteps(
  plan: StepPlan,
  blockSize: number,
  prefixCaching: boolean,
  start: TimeMs,
  stepMs: number,
  nextTimerAt: TimeMs,
): number {
  if (plan.prefillTokens > 0 || plan.loraLoads > 0 || plan.transfers.length > 0 || plan.preempted) return 1;
  let k = Infinity;
  for (const seq of plan.seqs) {
    if (seq.request.onToken !== undefined || seq.role === "send") return 1;
    // Step i (1-based) computes token c + i − 1 and produces output number outputs + i.
    const c = seq.numComputed;
    k = Math.min(k, seq.maxTokens - seq.outputs.length, seq.blocks.length * blockSize - c);
    if (prefixCaching) {
      // The first step i ≥ 2 that fills a block must announce it when it is planned.
      const fills = 2 + ((blockSize - ((c + 2) % blockSize)) % blockSize);
      k = Math.min(k, fills - 1);
    }
    if (k <= 1) return 1;
  }
  if (k === Infinity) return 1;
  if (nextTimerAt !== Infinity && stepMs > 0) {
    // Steps up to the one during which the timer fires are unaffected by it.
    let end = start;
    let steps = 0;
    while (steps < k && end < nextTimerAt) {
      end += stepMs;
      steps++;
    }
    k = steps;
  }
  return Math.max(1, k);
}
