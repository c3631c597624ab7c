import type { BookingChange } from "./types.js";

interface Peer {
  lastHeard: number;
  /** The peer's live bookings by request id: the add that made each. */
  readonly bookings: Map<string, BookingChange>;
  /** Sequence number of the peer's last changes message seen (undefined until it sends one). */
  seq: number | undefined;
  /** Its bookings here may be incomplete (new peer, or messages of it lost) until its next snapshot. */
  stale: boolean;
}

/** What to do with a peer's change. */
export interface Recorded {
  /** Apply it to the load view (false for an add already known, e.g. from a re-announce). */
  readonly apply: boolean;
  /** The peer was not known before this message (first contact, or back after its lease ran out). */
  readonly newPeer: boolean;
}

/**
 * The peers of one replica and the bookings each owns, as far as their messages told: pure bookkeeping on
 * an injected clock. A peer not heard from for a lease is gone; its bookings are returned once, as the
 * `free` changes that take them out of the load view.
 */
export class PeerLedger {
  private readonly peers = new Map<string, Peer>();
  private bookingCount = 0;

  constructor(private readonly leaseMs: number) {}

  get size(): number {
    return this.peers.size;
  }

  /** Live bookings owned by all peers. */
  get bookings(): number {
    return this.bookingCount;
  }

  /** The live peers' ids. */
  replicas(): IterableIterator<string> {
    return this.peers.keys();
  }

  has(replica: string): boolean {
    return this.peers.has(replica);
  }

  /** Any message from `replica` (heartbeat included) renews its lease; returns whether it was new. */
  heard(replica: string, now: number): boolean {
    const peer = this.peers.get(replica);
    if (peer !== undefined) {
      peer.lastHeard = now;
      return false;
    }
    this.peers.set(replica, { lastHeard: now, bookings: new Map(), seq: undefined, stale: true });
    return true;
  }

  /**
   * Checks a peer's sequence number against the last one seen: a changes message must carry the next one, a
   * heartbeat the last one. A gap means messages were lost. Returns whether the peer is stale (new, or with a
   * gap) until `replace` applies its snapshot. Messages without a number are taken as they come.
   */
  sequence(replica: string, kind: "changes" | "heartbeat", seq: number | undefined): boolean {
    const peer = this.peers.get(replica);
    if (peer === undefined) return false;
    if (seq !== undefined) {
      const expected = peer.seq === undefined ? seq : kind === "changes" ? peer.seq + 1 : peer.seq;
      if (seq !== expected) peer.stale = true;
      peer.seq = seq;
    }
    return peer.stale;
  }

  /**
   * A peer's snapshot (all its live bookings after its changes message `seq`) replaces what was known of it:
   * returns the frees of the bookings it no longer holds; its changes are then recorded as usual.
   */
  replace(replica: string, snapshot: readonly BookingChange[], seq: number | undefined, now: number): BookingChange[] {
    this.heard(replica, now);
    const peer = this.peers.get(replica)!;
    const live = new Set(snapshot.filter((c) => c.data.type === "add_request").map((c) => c.requestId));
    const frees: BookingChange[] = [];
    for (const [requestId, add] of peer.bookings) {
      if (live.has(requestId)) continue;
      peer.bookings.delete(requestId);
      this.bookingCount--;
      frees.push({ ...add, data: { type: "free" } });
    }
    if (seq !== undefined) peer.seq = seq;
    peer.stale = false;
    return frees;
  }

  /** Records one change of `replica`. */
  record(replica: string, change: BookingChange, now: number): Recorded {
    const newPeer = this.heard(replica, now);
    const { bookings } = this.peers.get(replica)!;
    const known = bookings.has(change.requestId);
    switch (change.data.type) {
      case "add_request":
        if (known) return { apply: false, newPeer };
        bookings.set(change.requestId, change);
        this.bookingCount++;
        return { apply: true, newPeer };
      case "free":
        if (known) {
          bookings.delete(change.requestId);
          this.bookingCount--;
        }
        return { apply: known, newPeer };
      case "mark_prefill_completed":
      case "output":
        return { apply: known, newPeer };
    }
  }

  /** Forgets `replica` (it said goodbye); returns the frees of its bookings. */
  remove(replica: string): BookingChange[] {
    const peer = this.peers.get(replica);
    if (peer === undefined) return [];
    this.peers.delete(replica);
    this.bookingCount -= peer.bookings.size;
    return [...peer.bookings.values()].map((add) => ({ ...add, data: { type: "free" } }));
  }

  /** Forgets every peer whose lease ran out by `now`; returns them with the frees of their bookings. */
  expire(now: number): { replica: string; frees: BookingChange[] }[] {
    const gone: { replica: string; frees: BookingChange[] }[] = [];
    for (const [replica, peer] of this.peers) {
      if (now - peer.lastHeard >= this.leaseMs) gone.push({ replica, frees: this.remove(replica) });
    }
    return gone;
  }
}
