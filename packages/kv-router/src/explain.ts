import type { WorkerRank } from "@dynamo/kv-indexer";
import type { Evaluation, ScoredCandidate } from "@dynamo/scheduling";
import type { CandidateExplain, RouteExplain } from "./types.js";

/** Adds `explain` as an enumerable property built on first read (routing never pays for it). */
export function withLazyExplain<T extends object>(
  target: T,
  build: () => RouteExplain,
): T & { readonly explain: RouteExplain } {
  let cached: RouteExplain | undefined;
  return Object.defineProperty(target, "explain", { enumerable: true, get: () => (cached ??= build()) }) as T & {
    readonly explain: RouteExplain;
  };
}

export function rankOf(c: ScoredCandidate): WorkerRank {
  return { workerId: c.rank.workerId, dpRank: c.rank.dpRank };
}

export function explainOf(evaluation: Evaluation | undefined, chosen: Evaluation | undefined): CandidateExplain[] {
  if (!evaluation) return [];
  const winner = chosen?.kind === "chosen" ? chosen.chosen : undefined;
  const why = chosen?.kind === "chosen" ? chosen.reason : "";
  return evaluation.candidates.map((c) => {
    const allRanksBusy = evaluation.busyWorkers.has(c.rank.workerId);
    const isChosen = c === winner;
    return {
      workerId: c.rank.workerId,
      dpRank: c.rank.dpRank,
      overlapBlocks: c.overlapBlocks,
      hostOverlapBlocks: c.hostOverlapBlocks,
      diskOverlapBlocks: c.diskOverlapBlocks,
      prefillBlocks: c.breakdown.prefillBlocks,
      decodeBlocks: c.breakdown.decodeBlocks,
      activeRequests: c.load.activeRequests,
      cost: c.cost, // what the policy compared (the cost function plus any LoRA load penalty)
      busy: c.busyReason !== null,
      chosen: isChosen,
      reason: isChosen
        ? why
        : allRanksBusy
          ? `excluded, all ranks busy: ${c.busyReason}`
          : c.excluded
            ? `skipped, ${c.busyReason}`
            : c.busyReason
              ? `busy rank (worker has free ranks): ${c.busyReason}`
              : "not chosen",
    };
  });
}
