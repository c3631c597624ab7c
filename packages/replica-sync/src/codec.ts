import type { BookingChange, ReplicaMessage, SeenVector } from "./types.js";

/**
 * JSON wire format of the replicas' messages. 64-bit values travel as decimal strings, a prompt's sequence
 * hashes as base64 of their little-endian bytes (a 240k-token prompt is 15k hashes: 120 KB, not 300 KB of
 * decimal strings). Decoding validates every field and reports a bad message as `undefined` plus the reason,
 * without throwing, so a hostile peer costs one parse.
 */

type WireChange = {
  id: string;
  w: string;
  r: number;
  p: "decode" | "prefill";
  o: string;
  t: "add" | "prefill" | "output" | "free";
  h?: string | null;
  pb?: number;
  isl?: number;
  pt?: number;
  eo?: number;
  g?: number;
};

/** Messages larger than this are refused unread (a batch of 256 adds of 240k-token prompts is ~31 MB). */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

function encodeHashes(hashes: BigUint64Array | null): string | null {
  if (hashes === null) return null;
  return Buffer.from(hashes.buffer, hashes.byteOffset, hashes.byteLength).toString("base64");
}

function decodeHashes(text: string): BigUint64Array | undefined {
  const bytes = Buffer.from(text, "base64");
  if (bytes.byteLength % 8 !== 0) return undefined;
  const out = new BigUint64Array(bytes.byteLength / 8);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

function encodeChange(change: BookingChange): WireChange {
  const base = {
    id: change.requestId,
    w: change.worker.workerId.toString(),
    r: change.worker.dpRank,
    p: change.pool,
    o: change.routerId.toString(),
  };
  const d = change.data;
  if (d.type === "free") return { ...base, t: "free" };
  if (d.type === "mark_prefill_completed") return { ...base, t: "prefill" };
  if (d.type === "output") return { ...base, t: "output", g: d.generatedTokens };
  return {
    ...base,
    t: "add",
    h: encodeHashes(d.tokenSequence),
    pb: d.privateBlocks,
    isl: d.isl,
    pt: d.prefillTokens,
    ...(d.expectedOutputTokens !== undefined && { eo: d.expectedOutputTokens }),
  };
}

export function encodeMessage(message: ReplicaMessage): Uint8Array {
  const wire = message.kind === "changes" ? { ...message, changes: message.changes.map(encodeChange) } : message;
  return Buffer.from(JSON.stringify(wire));
}

const isCount = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0;
const isU64 = (v: unknown): v is string => typeof v === "string" && /^\d{1,20}$/.test(v) && BigInt(v) < 1n << 64n;

function decodeChange(raw: unknown): BookingChange | string {
  if (typeof raw !== "object" || raw === null) return "a change is not an object";
  const c = raw as Partial<WireChange>;
  if (typeof c.id !== "string" || c.id === "" || c.id.length > 512)
    return "id: a non-empty string of at most 512 characters";
  if (!isU64(c.w)) return `${c.id}: w (worker id) must be a u64 in decimal`;
  if (!isCount(c.r)) return `${c.id}: r (dp rank) must be a non-negative integer`;
  if (c.p !== "decode" && c.p !== "prefill") return `${c.id}: p (pool) must be decode or prefill`;
  if (!isU64(c.o)) return `${c.id}: o (router id) must be a u64 in decimal`;
  const base = { requestId: c.id, worker: { workerId: BigInt(c.w), dpRank: c.r }, pool: c.p, routerId: BigInt(c.o) };
  if (c.t === "free") return { ...base, data: { type: "free" } };
  if (c.t === "prefill") return { ...base, data: { type: "mark_prefill_completed" } };
  if (c.t === "output") {
    if (!isCount(c.g)) return `${c.id}: g (generated tokens) must be a non-negative integer`;
    return { ...base, data: { type: "output", generatedTokens: c.g } };
  }
  if (c.t !== "add") return `${c.id}: t (type) must be add, prefill, output or free`;
  if (!isCount(c.pb) || !isCount(c.isl) || !isCount(c.pt))
    return `${c.id}: pb, isl and pt must be non-negative integers`;
  if (c.eo !== undefined && !isCount(c.eo)) return `${c.id}: eo must be a non-negative integer`;
  let hashes: BigUint64Array | null = null;
  if (c.h !== undefined && c.h !== null) {
    if (typeof c.h !== "string") return `${c.id}: h (sequence hashes) must be base64 or null`;
    const decoded = decodeHashes(c.h);
    if (decoded === undefined) return `${c.id}: h is not a whole number of 8-byte hashes`;
    hashes = decoded;
  }
  return {
    ...base,
    data: {
      type: "add_request",
      tokenSequence: hashes,
      privateBlocks: c.pb,
      isl: c.isl,
      prefillTokens: c.pt,
      ...(c.eo !== undefined && { expectedOutputTokens: c.eo }),
    },
  };
}

/** Decodes a message, or says what is wrong with it. */
export function decodeMessage(bytes: Uint8Array): { message: ReplicaMessage } | { error: string } {
  if (bytes.byteLength > MAX_MESSAGE_BYTES)
    return { error: `message of ${bytes.byteLength} bytes exceeds ${MAX_MESSAGE_BYTES}` };
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8"));
  } catch (error) {
    return { error: `not JSON: ${(error as Error).message}` };
  }
  if (typeof raw !== "object" || raw === null) return { error: "not an object" };
  const m = raw as {
    kind?: unknown;
    replica?: unknown;
    changes?: unknown;
    bookings?: unknown;
    seq?: unknown;
    seen?: unknown;
    snapshot?: unknown;
  };
  if (typeof m.replica !== "string" || m.replica === "" || m.replica.length > 256)
    return { error: "replica: a non-empty string of at most 256 characters" };
  if (m.seq !== undefined && !isCount(m.seq)) return { error: "seq must be a non-negative integer" };
  const seq = m.seq === undefined ? {} : { seq: m.seq };
  const seen = decodeSeen(m.seen);
  if (typeof seen === "string") return { error: seen };
  const withSeen = seen !== undefined ? { seen } : {};
  if (m.kind === "heartbeat") {
    if (!isCount(m.bookings)) return { error: "heartbeat.bookings must be a non-negative integer" };
    return { message: { kind: "heartbeat", replica: m.replica, bookings: m.bookings, ...seq, ...withSeen } };
  }
  if (m.kind === "goodbye") return { message: { kind: "goodbye", replica: m.replica } };
  if (m.kind !== "changes") return { error: "kind must be changes, heartbeat or goodbye" };
  if (!Array.isArray(m.changes)) return { error: "changes must be an array" };
  if (m.snapshot !== undefined && typeof m.snapshot !== "boolean") return { error: "snapshot must be a boolean" };
  const changes: BookingChange[] = [];
  for (const raw of m.changes) {
    const change = decodeChange(raw);
    if (typeof change === "string") return { error: change };
    changes.push(change);
  }
  return {
    message: {
      kind: "changes",
      replica: m.replica,
      changes,
      ...seq,
      ...withSeen,
      ...(m.snapshot === true && { snapshot: true }),
    },
  };
}

/** Replicas a `seen` vector may name (far more than any deployment runs). */
export const MAX_SEEN_REPLICAS = 1024;

function decodeSeen(raw: unknown): SeenVector | undefined | string {
  if (raw === undefined) return undefined;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return "seen must be an object";
  const entries = Object.entries(raw);
  if (entries.length > MAX_SEEN_REPLICAS) return `seen names more than ${MAX_SEEN_REPLICAS} replicas`;
  const out: Record<string, number> = Object.create(null) as Record<string, number>;
  for (const [replica, seq] of entries) {
    if (replica.length > 256 || !isCount(seq)) return "seen maps replica ids to non-negative integers";
    out[replica] = seq;
  }
  return out;
}
