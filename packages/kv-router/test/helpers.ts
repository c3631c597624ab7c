import {
  RouterEvents,
  computeBlockHashes,
  computeSequenceHashes,
  type HashSalt,
  type RouterEvent,
  type StorageTier,
} from "@dynamo/kv-indexer";

export const BS = 16;

/** Deterministic prompt: `blocks` full blocks whose first `shared` blocks come from family `family`. */
export function prompt(blocks: number, family: number, unique: number, shared = blocks): Uint32Array {
  const out = new Uint32Array(blocks * BS);
  for (let i = 0; i < out.length; i++) out[i] = i < shared * BS ? family * 100_000 + i : unique * 1_000_000 + i;
  return out;
}

/** The stored event a worker rank would publish after caching `tokens`. */
export function storedEvent(
  workerId: bigint,
  dpRank: number,
  eventId: bigint,
  tokens: Uint32Array,
  tier: StorageTier = "device",
  salt?: HashSalt,
): RouterEvent {
  const local = computeBlockHashes(tokens, BS, salt);
  const engine = computeSequenceHashes(local);
  return RouterEvents.stored(
    { workerId, dpRank },
    eventId,
    null,
    Array.from(local, (tokensHash, i) => ({ blockHash: engine[i]!, tokensHash })),
    tier,
  );
}
