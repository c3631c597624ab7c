import { randomBytes } from "node:crypto";
import type { DecisionAudit, RankLoadDelta } from "@dynamo/kv-router";
import { createInbox, type Msg, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { DecisionAudits } from "./audits.js";
import { decodeMessage, encodeMessage } from "./codec.js";
import { OwnBookings } from "./own-bookings.js";
import { PeerLedger } from "./peers.js";
import type { BookingChange, BookingTarget, ReplicaMessage, ReplicaSyncOptions, ReplicaSyncStats } from "./types.js";

const DEFAULTS = {
  subjectPrefix: "dynamo.router.replicas",
  leaseMs: 10_000,
  heartbeatMs: 1_000,
  batchDelayMs: 1,
  batchSize: 256,
  warmJoinMs: 2_000,
  auditTimeoutMs: 5_000,
  maxOpenAudits: 4_096,
};

/**
 * Router replicas that route as one over NATS. Every booking change this replica makes (`publish`, wired to
 * the router service's `onBookingChange`) goes to its peers in batches; every peer change is applied to this
 * replica's load view (`target`). Each replica heartbeats; a peer silent for a lease is gone and its bookings
 * leave the view; a peer seen for the first time (a new replica, or one back from a partition) is asked for
 * its live bookings, and answers the same question from others. `warmJoin` asks every peer before this
 * replica reports ready.
 *
 * Subjects under the prefix: `<prefix>.changes.<replica>` (changes, heartbeats, goodbyes),
 * `<prefix>.snapshot` (a request every peer answers) and `<prefix>.snapshot.<replica>` (one peer's answer).
 */
export class ReplicaSync {
  readonly replicaId: string;
  private readonly settings: typeof DEFAULTS;
  private readonly ledger: PeerLedger;
  private readonly own = new OwnBookings();
  private readonly audits: DecisionAudits;
  /** Number of the last batch of changes this replica sent. */
  private seq = 0;
  /** For each peer, the highest batch of its changes applied here (sent to peers as `seen`). */
  private readonly applied = new Map<string, number>();
  private readonly subscriptions: Subscription[] = [];
  private pending: BookingChange[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readonly log: (message: string) => void;
  private readonly now: () => number;
  private closed = false;
  /** Peers asked for a snapshot whose answer has not come yet. */
  private readonly asking = new Set<string>();
  private counters = {
    changesPublished: 0,
    changesApplied: 0,
    malformed: 0,
    expiredBookings: 0,
    expiredPeers: 0,
    resyncs: 0,
  };

  private constructor(
    private readonly nc: NatsConnection,
    private readonly target: BookingTarget,
    options: ReplicaSyncOptions,
  ) {
    this.replicaId = options.replicaId ?? randomBytes(8).toString("hex");
    this.settings = {
      subjectPrefix: options.subjectPrefix ?? DEFAULTS.subjectPrefix,
      leaseMs: options.leaseMs ?? DEFAULTS.leaseMs,
      heartbeatMs: options.heartbeatMs ?? DEFAULTS.heartbeatMs,
      batchDelayMs: options.batchDelayMs ?? DEFAULTS.batchDelayMs,
      batchSize: options.batchSize ?? DEFAULTS.batchSize,
      warmJoinMs: options.warmJoinMs ?? DEFAULTS.warmJoinMs,
      auditTimeoutMs: options.auditTimeoutMs ?? DEFAULTS.auditTimeoutMs,
      maxOpenAudits: options.maxOpenAudits ?? DEFAULTS.maxOpenAudits,
    };
    if (this.settings.heartbeatMs * 2 > this.settings.leaseMs)
      throw new RangeError(
        `heartbeatMs (${this.settings.heartbeatMs}) must be at most half of leaseMs (${this.settings.leaseMs})`,
      );
    this.ledger = new PeerLedger(this.settings.leaseMs);
    this.audits = new DecisionAudits(this.settings.auditTimeoutMs, this.settings.maxOpenAudits);
    this.log = options.log ?? ((message) => console.warn(message));
    this.now = options.now ?? Date.now;
  }

  /** Joins the replicas on `nc` (kept open on `close`), applying peers' changes to `target`. */
  static async start(
    nc: NatsConnection,
    target: BookingTarget,
    options: ReplicaSyncOptions = {},
  ): Promise<ReplicaSync> {
    const sync = new ReplicaSync(nc, target, options);
    await sync.subscribe();
    return sync;
  }

  private subject(...parts: string[]): string {
    return [this.settings.subjectPrefix, ...parts].join(".");
  }

  private async subscribe(): Promise<void> {
    this.subscriptions.push(
      this.nc.subscribe(this.subject("changes", "*"), {
        callback: (error, msg) => this.guard(error, msg, this.onMessage),
      }),
      this.nc.subscribe(this.subject("snapshot"), {
        callback: (error, msg) => this.guard(error, msg, this.answerSnapshot),
      }),
      this.nc.subscribe(this.subject("snapshot", this.replicaId), {
        callback: (error, msg) => this.guard(error, msg, this.answerSnapshot),
      }),
    );
    await this.nc.flush();
    this.heartbeat();
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.settings.heartbeatMs);
    this.heartbeatTimer.unref();
  }

  /** Runs a subscription handler; a failure is logged, never thrown into the NATS client. */
  private guard(error: Error | null, msg: Msg, handler: (msg: Msg) => void): void {
    if (error !== null) return;
    try {
      handler.call(this, msg);
    } catch (failure) {
      this.log(`replica sync: handling ${msg.subject} failed: ${(failure as Error).message}`);
    }
  }

  /** Hook for the router service's `onBookingChange`: shares one local change with the peers. */
  readonly publish = (change: BookingChange): void => {
    if (this.closed) return;
    this.own.track(change);
    this.pending.push(change);
    if (this.pending.length >= this.settings.batchSize) this.flush();
    else this.flushTimer ??= setTimeout(() => this.flush(), this.settings.batchDelayMs);
  };

  /**
   * Hook for the router service's `onDecisionAudit`: a decision just booked (its booking already handed to
   * `publish`), re-scored once every peer has seen it, against the bookings peers made without seeing it.
   */
  readonly audit = (audit: DecisionAudit): void => {
    if (this.closed) return;
    // Its booking is waiting for the next batch, or went out in the last one (a full batch is sent at once).
    this.audits.add(audit, this.pending.length > 0 ? this.seq + 1 : this.seq, this.now());
  };

  /** Publishes the waiting changes now. */
  flush(): void {
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.pending.length === 0) return;
    const changes = this.pending;
    this.pending = [];
    this.seq++;
    this.send(this.subject("changes", this.replicaId), {
      kind: "changes",
      replica: this.replicaId,
      changes,
      seq: this.seq,
      seen: this.seen(),
    });
    this.counters.changesPublished += changes.length;
  }

  private seen(): Record<string, number> {
    return Object.fromEntries(this.applied);
  }

  private send(subject: string, message: ReplicaMessage, reply?: string): void {
    try {
      this.nc.publish(subject, encodeMessage(message), reply !== undefined ? { reply } : undefined);
    } catch (error) {
      this.log(`replica sync: cannot publish on ${subject}: ${(error as Error).message}`);
    }
  }

  private heartbeat(): void {
    if (this.closed) return;
    this.flush(); // the heartbeat's sequence number covers every change made so far
    this.send(this.subject("changes", this.replicaId), {
      kind: "heartbeat",
      replica: this.replicaId,
      bookings: this.own.size,
      seq: this.seq,
      seen: this.seen(),
    });
    this.expirePeers();
    this.audits.settle(this.ledger.replicas(), this.now());
  }

  /** Drops the bookings of peers whose lease ran out; returns how many peers went. */
  expirePeers(): number {
    const gone = this.ledger.expire(this.now());
    for (const { replica, frees } of gone) {
      this.forgetPeer(replica);
      for (const free of frees) this.target.applyBookingChange(free);
      this.counters.expiredBookings += frees.length;
      this.counters.expiredPeers++;
      this.log(
        `replica sync: peer ${replica} silent for ${this.settings.leaseMs} ms; dropped its ${frees.length} bookings`,
      );
    }
    return gone.length;
  }

  private onMessage(msg: Msg): void {
    const decoded = decodeMessage(msg.data);
    if ("error" in decoded) {
      this.counters.malformed++;
      this.log(`replica sync: malformed message on ${msg.subject}: ${decoded.error}`);
      return;
    }
    this.applyMessage(decoded.message);
  }

  private forgetPeer(replica: string): void {
    this.applied.delete(replica);
    this.audits.forget(replica);
  }

  private applyMessage(message: ReplicaMessage): void {
    if (message.replica === this.replicaId) return;
    const now = this.now();
    if (message.kind === "goodbye") {
      this.forgetPeer(message.replica);
      const frees = this.ledger.remove(message.replica);
      for (const free of frees) this.target.applyBookingChange(free);
      this.audits.settle(this.ledger.replicas(), now);
      return;
    }
    const seenOfUs = message.seen?.[this.replicaId];
    if (message.kind === "heartbeat") {
      const newPeer = this.ledger.heard(message.replica, now);
      if (this.ledger.sequence(message.replica, "heartbeat", message.seq)) this.askSnapshot(message.replica, !newPeer);
      this.audits.peerMessage(message.replica, seenOfUs, []);
      this.audits.settle(this.ledger.replicas(), now);
      return;
    }
    // Changes made here so far go out with the `seen` they were made under, before this batch is applied.
    this.flush();
    if (message.snapshot === true) {
      // All the peer's live bookings: those it no longer holds leave the view, the others are recorded.
      for (const free of this.ledger.replace(message.replica, message.changes, message.seq, now))
        this.target.applyBookingChange(free);
    }
    let newPeer = false;
    const deltas: RankLoadDelta[] = [];
    const collect = (delta: RankLoadDelta) => deltas.push(delta);
    for (const change of message.changes) {
      const recorded = this.ledger.record(message.replica, change, now);
      newPeer ||= recorded.newPeer;
      if (!recorded.apply) continue;
      const measure = change.data.type === "add_request" ? collect : undefined;
      if (this.target.applyBookingChange(change, measure)) this.counters.changesApplied++;
    }
    if (message.seq !== undefined)
      this.applied.set(message.replica, Math.max(this.applied.get(message.replica) ?? 0, message.seq));
    this.audits.peerMessage(message.replica, seenOfUs, deltas);
    this.audits.settle(this.ledger.replicas(), now);
    if (message.snapshot === true) return;
    if (this.ledger.sequence(message.replica, "changes", message.seq)) this.askSnapshot(message.replica, !newPeer);
  }

  /**
   * Asks one peer for its live bookings (one question at a time); the answer comes back as a snapshot. `resync`:
   * the peer was known, but messages of it were lost (a NATS outage, a slow consumer) or an earlier question
   * went unanswered.
   */
  private askSnapshot(replica: string, resync = false): void {
    if (this.asking.has(replica)) return;
    if (resync) this.counters.resyncs++;
    this.asking.add(replica);
    const inbox = createInbox();
    this.nc.subscribe(inbox, {
      max: 1,
      // A question lost (the peer was still reconnecting) is asked again soon, not after a whole lease.
      timeout: Math.min(this.settings.leaseMs, Math.max(1000, 2 * this.settings.heartbeatMs)),
      callback: (error, msg) => {
        this.asking.delete(replica); // answered or timed out: a stale peer is asked again at its next heartbeat
        if (!error) this.onMessage(msg);
      },
    });
    this.nc.publish(this.subject("snapshot", replica), new Uint8Array(0), { reply: inbox });
  }

  private answerSnapshot(msg: Msg): void {
    if (msg.reply === undefined || this.closed) return;
    this.flush(); // changes made before the question reach the asker before the answer
    this.send(msg.reply, {
      kind: "changes",
      replica: this.replicaId,
      changes: this.own.snapshot(),
      seq: this.seq,
      seen: this.seen(),
      snapshot: true,
    });
  }

  /**
   * Loads every peer's live bookings: asks all replicas and applies the answers that arrive within
   * `warmJoinMs` (earlier once every peer that heartbeated in the meantime has answered). Returns the
   * number of peers that answered.
   */
  async warmJoin(): Promise<number> {
    const inbox = createInbox();
    const answered = new Set<string>();
    const started = this.now();
    await new Promise<void>((resolve) => {
      const sub = this.nc.subscribe(inbox, {
        callback: (error, msg) => {
          if (error) return;
          const decoded = decodeMessage(msg.data);
          if ("error" in decoded) {
            this.counters.malformed++;
            return;
          }
          if (decoded.message.replica === this.replicaId) return;
          answered.add(decoded.message.replica);
          this.applyMessage(decoded.message);
        },
      });
      const check = setInterval(() => {
        const waited = this.now() - started;
        const everyoneAnswered = waited > this.settings.heartbeatMs && answered.size >= this.ledger.size;
        if (waited >= this.settings.warmJoinMs || everyoneAnswered) {
          clearInterval(check);
          sub.unsubscribe();
          resolve();
        }
      }, 20);
      this.nc.publish(this.subject("snapshot"), new Uint8Array(0), { reply: inbox });
    });
    return answered.size;
  }

  get stats(): ReplicaSyncStats {
    return {
      peers: this.ledger.size,
      ownBookings: this.own.size,
      peerBookings: this.ledger.bookings,
      ...this.counters,
      decisionsRechecked: this.audits.stats.rechecked,
      decisionConflicts: this.audits.stats.conflicts,
      concurrentBookings: this.audits.stats.concurrent,
    };
  }

  /** Leaves: the waiting changes are sent, then a goodbye so peers drop this replica's bookings at once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    clearInterval(this.heartbeatTimer);
    this.send(this.subject("changes", this.replicaId), { kind: "goodbye", replica: this.replicaId });
    for (const sub of this.subscriptions) sub.unsubscribe();
    await this.nc.flush().catch(() => undefined);
  }
}
