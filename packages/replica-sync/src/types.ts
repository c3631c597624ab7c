import type { ActiveSequenceEvent, RankLoadDelta } from "@dynamo/kv-router";

/** A booking change as replicas exchange it (an `ActiveSequenceEvent` of the router). */
export type BookingChange = ActiveSequenceEvent;

/** What the sync applies peers' changes to: a `RouterService` (or a `KvRouter` through a small adapter). */
export interface BookingTarget {
  /**
   * Applies one peer change; returns whether anything changed. When `onLoadDelta` is given, it is told the
   * load the change added to its rank, for re-scoring audited decisions.
   */
  applyBookingChange(change: BookingChange, onLoadDelta?: (change: RankLoadDelta) => void): boolean;
}

/** For each replica, the highest batch sequence number of its changes the sender had applied. */
export type SeenVector = Readonly<Record<string, number>>;

/** Wire messages on the replicas' subjects. */
export type ReplicaMessage =
  /**
   * Booking changes of one replica, in the order it made them. `seq` numbers the replica's changes messages
   * (1, 2, …), so a receiver notices a lost one. A `snapshot` (the answer to a snapshot request) holds all the
   * replica's live bookings after its first `seq` changes messages: it replaces what the receiver knew.
   * `seen` says which of its peers' changes messages the sender had applied when it made these changes, so a
   * receiver knows which of its own decisions they were made without.
   */
  | {
      readonly kind: "changes";
      readonly replica: string;
      readonly changes: readonly BookingChange[];
      readonly seq?: number;
      readonly seen?: SeenVector;
      readonly snapshot?: boolean;
    }
  /**
   * A replica is alive; `bookings` is how many live bookings it owns, `seq` how many changes messages it sent,
   * `seen` as in `changes`.
   */
  | {
      readonly kind: "heartbeat";
      readonly replica: string;
      readonly bookings: number;
      readonly seq?: number;
      readonly seen?: SeenVector;
    }
  /** A replica leaves (graceful stop): its bookings end with it. */
  | { readonly kind: "goodbye"; readonly replica: string };

export interface ReplicaSyncOptions {
  /** Identifies this replica to its peers (default: a random id). Unique per process. */
  readonly replicaId?: string;
  /** Subject prefix shared by the replicas of one deployment (default `dynamo.router.replicas`). */
  readonly subjectPrefix?: string;
  /** A peer whose heartbeat has not been heard for this long is gone, with its bookings (default 10,000 ms). */
  readonly leaseMs?: number;
  /** Heartbeat period (default 1,000 ms; keep it well under the lease). */
  readonly heartbeatMs?: number;
  /** Changes are published at most this long after they were made (default 1 ms) … */
  readonly batchDelayMs?: number;
  /** … or as soon as this many are waiting (default 256). */
  readonly batchSize?: number;
  /** An audited decision is re-scored at the latest this long after it was made (default 5,000 ms). */
  readonly auditTimeoutMs?: number;
  /** At most this many audited decisions wait for their peers (default 4,096; older ones are re-scored early). */
  readonly maxOpenAudits?: number;
  /** How long `warmJoin` waits for peers' snapshots (default 2,000 ms). */
  readonly warmJoinMs?: number;
  /** Where problems go (malformed messages, publish failures). Default `console.warn`. */
  readonly log?: (message: string) => void;
  /** Clock in milliseconds (default `Date.now`). */
  readonly now?: () => number;
}

/** Counters of the sync, for metrics. */
export interface ReplicaSyncStats {
  /** Peers currently alive. */
  readonly peers: number;
  /** Live bookings this replica owns. */
  readonly ownBookings: number;
  /** Live bookings owned by peers, as this replica knows them. */
  readonly peerBookings: number;
  readonly changesPublished: number;
  readonly changesApplied: number;
  /** Peer messages that could not be decoded. */
  readonly malformed: number;
  /** Bookings dropped because their owner's lease ran out. */
  readonly expiredBookings: number;
  /** Peers whose lease ran out. */
  readonly expiredPeers: number;
  /** Audited decisions re-scored once every peer had seen them (or after the audit timeout). */
  readonly decisionsRechecked: number;
  /** Re-scored decisions that would have chosen another worker had they known peers' concurrent bookings. */
  readonly decisionConflicts: number;
  /** Peer bookings made concurrently with an audited decision (neither replica knew the other's). */
  readonly concurrentBookings: number;
  /** Snapshots asked again of a known peer: some of its messages were lost (a gap in its sequence numbers). */
  readonly resyncs: number;
}
