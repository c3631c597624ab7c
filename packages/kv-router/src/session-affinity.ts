import type { WorkerRank } from "@dynamo/kv-indexer";

/** Sticky sessions: session id → the decode worker rank it last used, for `ttlMs` after its last use. */
export class SessionAffinity {
  private readonly entries = new Map<string, { worker: WorkerRank; expiresAt: number }>();
  private lastSweep: number;

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number,
  ) {
    this.lastSweep = now();
  }

  lookup(sessionId: string | undefined): WorkerRank | undefined {
    if (!sessionId) return undefined;
    const entry = this.entries.get(sessionId);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.entries.delete(sessionId);
      return undefined;
    }
    return entry.worker;
  }

  remember(sessionId: string | undefined, worker: WorkerRank): void {
    if (!sessionId) return;
    const now = this.now();
    this.entries.set(sessionId, { worker, expiresAt: now + this.ttlMs });
    if (now - this.lastSweep >= 30_000) {
      this.lastSweep = now;
      for (const [id, e] of this.entries) if (e.expiresAt <= now) this.entries.delete(id);
    }
  }
}
