export { ReplicaSync } from "./sync.js";
export { PeerLedger, type Recorded } from "./peers.js";
export { OwnBookings } from "./own-bookings.js";
export { DecisionAudits } from "./audits.js";
export { decodeMessage, encodeMessage, MAX_MESSAGE_BYTES, MAX_SEEN_REPLICAS } from "./codec.js";
export type {
  BookingChange,
  BookingTarget,
  ReplicaMessage,
  ReplicaSyncOptions,
  ReplicaSyncStats,
  SeenVector,
} from "./types.js";
