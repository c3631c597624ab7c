import type { EngineWorker } from "./worker.js";
import { EngineRequestError } from "./request-validation.js";
import type { WorkloadHooks, WorkloadOp } from "./types.js";
import type { VirtualLoop } from "./virtual-loop.js";

/**
 * Plays a workload on a worker in virtual time: arrivals (requests the engine refuses are skipped),
 * cancellations of an earlier request, prefix-cache resets of a rank. Returns the accepted ids.
 */
export function playWorkload(
  loop: VirtualLoop,
  worker: EngineWorker,
  ops: readonly WorkloadOp[],
  hooks: WorkloadHooks = {},
): string[] {
  const ids: string[] = [];
  let t = 0;
  ops.forEach((o, i) => {
    t += o.dt;
    loop.advanceTo(t);
    if (o.kind === "cancel") {
      if (ids.length > 0) worker.cancel(ids[o.pick % ids.length]!);
    } else if (o.kind === "reset") {
      worker.ranks[o.rank % worker.ranks.length]!.resetPrefixCache();
    } else {
      const id = `r${i}`;
      try {
        worker.addRequest({
          id,
          tokens: o.tokens,
          maxTokens: o.maxTokens,
          loraName: o.lora,
          ...(hooks.onFinish ? { onFinish: hooks.onFinish } : {}),
          ...(o.stream && hooks.onToken ? { onToken: hooks.onToken } : {}),
        });
        ids.push(id);
      } catch (err) {
        if (!(err instanceof EngineRequestError)) throw err;
      }
      hooks.afterArrival?.(id);
    }
  });
  return ids;
}
