import { parseWorkerRankKey, workerRankKey } from "@dynamo/kv-indexer";
import type { ActiveSequences, SequenceChange } from "@dynamo/scheduling";
import type { ActiveSequenceEvent } from "./types.js";

/**
 * Replica sync: the booking changes router replicas exchange (Dynamo's `ActiveSequenceEvent`, with the
 * pool it belongs to). Prefix state needs no sync, every replica consumes the KV events; only load
 * bookkeeping is shared. The transport is the caller's.
 */

/** The message for one local bookkeeping change of `pool`. */
export function replicaEventOf(
  pool: ActiveSequenceEvent["pool"],
  change: SequenceChange,
  routerId: bigint,
): ActiveSequenceEvent {
  const { workerId, dpRank } = parseWorkerRankKey(change.rankKey);
  const data: ActiveSequenceEvent["data"] =
    change.type === "add"
      ? {
          type: "add_request",
          tokenSequence: change.spec.sequenceHashes ?? null,
          privateBlocks: change.spec.privateBlocks ?? 0,
          isl: change.spec.isl,
          prefillTokens: change.spec.prefillTokens,
          expectedOutputTokens: change.spec.expectedOutputTokens,
        }
      : change.type === "output"
        ? { type: "output", generatedTokens: change.generated }
        : { type: change.type === "free" ? "free" : "mark_prefill_completed" };
  return { requestId: change.requestId, worker: { workerId, dpRank }, pool, routerId, data };
}

/** Applies another replica's change to `sequences`; returns whether anything changed. */
export function applyReplicaChange(sequences: ActiveSequences, event: ActiveSequenceEvent): boolean {
  const d = event.data;
  if (d.type === "free") return sequences.free(event.requestId);
  if (d.type === "mark_prefill_completed") return sequences.markPrefillCompleted(event.requestId);
  if (d.type === "output") {
    if (!sequences.has(event.requestId)) return false;
    sequences.observeOutput(event.requestId, d.generatedTokens);
    return true;
  }
  return sequences.addRequest(event.requestId, workerRankKey(event.worker.workerId, event.worker.dpRank), {
    sequenceHashes: d.tokenSequence,
    privateBlocks: d.privateBlocks,
    isl: d.isl,
    prefillTokens: d.prefillTokens,
    expectedOutputTokens: d.expectedOutputTokens,
  });
}
