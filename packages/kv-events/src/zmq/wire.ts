/** vLLM's ZeroMQ framing: `[topic, seq (8-byte big-endian), payload]` and the replay protocol's markers. */

/** Sequence value of the replay end marker: −1 as signed 8 bytes (`0xFF` × 8). */
export const REPLAY_END_SEQ = 0xffff_ffff_ffff_ffffn;

export function encodeSeq(seq: bigint): Buffer {
  const out = Buffer.allocUnsafe(8);
  out.writeBigUInt64BE(BigInt.asUintN(64, seq));
  return out;
}

/** The sequence number of an 8-byte frame, or null when the frame has another length. */
export function decodeSeq(frame: Uint8Array): bigint | null {
  if (frame.byteLength !== 8) return null;
  return new DataView(frame.buffer, frame.byteOffset, 8).getBigUint64(0);
}

/**
 * The endpoint data-parallel rank `rank` uses: TCP port + rank; `inproc://` gets the suffix `_dp<rank>`;
 * other endpoints only for rank 0.
 */
export function endpointForRank(endpoint: string, rank: number): string {
  if (endpoint.startsWith("inproc://")) return `${endpoint}_dp${rank}`;
  if (rank === 0) return endpoint;
  const tcp = /^(tcp:\/\/.*:)(\d+)$/.exec(endpoint);
  if (!tcp)
    throw new Error(
      `cannot offset ${endpoint} for data-parallel rank ${rank}: only tcp:// and inproc:// endpoints can`,
    );
  return `${tcp[1]}${Number(tcp[2]) + rank}`;
}

/** vLLM's rule: bind when the endpoint has a wildcard host or is ipc/inproc, otherwise connect. */
export function publisherBinds(endpoint: string): boolean {
  return (
    endpoint.includes("*") ||
    endpoint.includes("::") ||
    endpoint.startsWith("ipc://") ||
    endpoint.startsWith("inproc://")
  );
}
