/**
 * The decisions of gap recovery on a vLLM ZeroMQ stream, apart from the sockets: whether a replay covers
 * a gap, which replayed batches continue the stream, and whether the publisher behind the replay socket
 * is still the one that sent the last batch received. Pure functions over sequence numbers and payloads.
 */

/** One batch as the replay socket returns it. */
export interface ReplayedBatch {
  readonly seq: bigint;
  readonly topic: string;
  readonly payload: Uint8Array;
}

/** Whether `batches` (ascending) are exactly the sequence numbers `from .. until - 1`, none missing. */
export function coversRange(batches: readonly ReplayedBatch[], from: bigint, until: bigint): boolean {
  return (
    batches.length > 0 && batches.every((b, i) => b.seq === from + BigInt(i)) && batches.at(-1)!.seq === until - 1n
  );
}

/**
 * The consecutive run at the start of `batches` (ascending): from `after + 1` when given, else from the
 * first batch; it stops at the first missing sequence number.
 */
export function consecutiveRun(batches: readonly ReplayedBatch[], after: bigint | null): ReplayedBatch[] {
  const run: ReplayedBatch[] = [];
  for (const b of batches) {
    const expected = run.length > 0 ? run.at(-1)!.seq + 1n : after === null ? b.seq : after + 1n;
    if (b.seq !== expected) break;
    run.push(b);
  }
  return run;
}

/**
 * Whether the publisher behind the replay socket is the one that sent batch `last` (whose bytes were
 * `lastPayload`): `same` when the replay holds that batch with the same bytes, `restarted` when it holds
 * other bytes or (a complete answer) nothing from `last` on; `unknown` when the buffer rolled past
 * `last` or the answer is incomplete.
 */
export function continuity(
  reply: { readonly batches: readonly ReplayedBatch[]; readonly complete: boolean },
  last: bigint,
  lastPayload: Uint8Array | null,
): "same" | "restarted" | "unknown" {
  const held = reply.batches.find((b) => b.seq === last);
  if (held) return lastPayload !== null && samePayload(held.payload, lastPayload) ? "same" : "restarted";
  if (reply.complete && !reply.batches.some((b) => b.seq >= last)) return "restarted";
  return "unknown";
}

export function samePayload(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}
