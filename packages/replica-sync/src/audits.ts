import type { DecisionAudit, LoadDelta, RankLoadDelta } from "@dynamo/kv-router";

interface OpenAudit {
  /** The batch of this replica's changes that carried the decision's booking. */
  readonly seq: number;
  readonly openedAt: number;
  readonly audit: DecisionAudit;
  /** Load that peers' concurrent bookings added, by pool and rank. */
  deltas: { readonly decode: Map<string, LoadDelta>; readonly prefill: Map<string, LoadDelta> } | undefined;
}

/**
 * The select-to-book race, measured. Two replicas deciding at the same instant each book without the
 * other's booking. An audited decision stays open until every live peer has said (through the `seen`
 * vector of its messages) that it applied the batch carrying the decision; every peer booking that arrives
 * before that, made by a peer that had not seen the decision, was concurrent with it, and its load is
 * added to the audit. When the audit closes, the decision is scored again with that load: a different
 * winner is a conflict. Pure bookkeeping on an injected clock.
 */
export class DecisionAudits {
  private readonly open: OpenAudit[] = [];
  /** For each peer, the highest batch of this replica's changes it said it had applied. */
  private readonly peerSeen = new Map<string, number>();
  private counts = { rechecked: 0, conflicts: 0, concurrent: 0 };

  constructor(
    private readonly timeoutMs: number,
    private readonly maxOpen: number,
  ) {}

  get stats(): { readonly rechecked: number; readonly conflicts: number; readonly concurrent: number } {
    return this.counts;
  }

  get openCount(): number {
    return this.open.length;
  }

  /** A decision whose booking goes out in batch `seq` of this replica. */
  add(audit: DecisionAudit, seq: number, now: number): void {
    this.open.push({ seq, openedAt: now, audit, deltas: undefined });
    while (this.open.length > this.maxOpen) this.close(this.open.shift()!);
  }

  /**
   * A peer's message: `seenOfUs` is the highest batch of ours it had applied when it made `deltas` (the load
   * its bookings in the message added, by rank). Bookings are concurrent with every open decision the
   * peer had not seen.
   */
  peerMessage(peer: string, seenOfUs: number | undefined, deltas: readonly RankLoadDelta[]): void {
    const seen = seenOfUs ?? 0;
    if (deltas.length > 0) {
      let concurrent = false;
      for (const entry of this.open) {
        if (entry.seq <= seen) continue;
        concurrent = true;
        entry.deltas ??= { decode: new Map(), prefill: new Map() };
        for (const { pool, rank, delta } of deltas) {
          const byRank = entry.deltas[pool];
          byRank.set(rank, sum(byRank.get(rank), delta));
        }
      }
      if (concurrent) this.counts.concurrent += deltas.length;
    }
    if (seenOfUs !== undefined) this.peerSeen.set(peer, Math.max(this.peerSeen.get(peer) ?? 0, seenOfUs));
  }

  /** A peer left: it no longer holds decisions open. */
  forget(peer: string): void {
    this.peerSeen.delete(peer);
  }

  /**
   * Closes the audits every live peer has seen, and those past the timeout; returns how many closed.
   * `peers` are the live peers.
   */
  settle(peers: Iterable<string>, now: number): number {
    let seenByAll = Infinity;
    for (const peer of peers) seenByAll = Math.min(seenByAll, this.peerSeen.get(peer) ?? 0);
    let closed = 0;
    while (this.open.length > 0) {
      const first = this.open[0]!;
      if (first.seq > seenByAll && now - first.openedAt < this.timeoutMs) break;
      this.close(this.open.shift()!);
      closed++;
    }
    return closed;
  }

  private close(entry: OpenAudit): void {
    this.counts.rechecked++;
    if (entry.deltas !== undefined && entry.audit.wouldChange(entry.deltas)) this.counts.conflicts++;
  }
}

function sum(a: LoadDelta | undefined, b: LoadDelta): LoadDelta {
  if (a === undefined) return b;
  return {
    prefillTokens: a.prefillTokens + b.prefillTokens,
    blocks: a.blocks + b.blocks,
    requests: a.requests + b.requests,
  };
}
