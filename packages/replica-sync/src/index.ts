export { ReplicaSync } from "./sync.js";
export { PeerLedger, type Recorded } from "./peers.js";
export { OwnBookings } from "./own-bookings.js";
export { decodeMessage, encodeMessage, MAX_MESSAGE_BYTES } from "./codec.js";
export type { BookingChange, BookingTarget, ReplicaMessage, ReplicaSyncOptions, ReplicaSyncStats } from "./types.js";
