/**
 * In-flight load per worker rank (Dynamo's ActiveSequences): prompt blocks reference-counted by
 * sequence hash so that blocks shared by active requests on one rank count once, prompt tokens still in
 * prefill, output blocks with optional expected-output-length decay, and stale-request expiry.
 */

export interface ActiveSequencesOptions {
  readonly blockSize: number;
  /** Keep one tracking hash every `stride` prompt blocks; each kept hash stands for `stride` blocks. */
  readonly stride?: number;
  /** Count output blocks reported through `observeOutput` / `addOutputBlock` (default false). */
  readonly trackOutputBlocks?: boolean;
  /** Requests older than this are freed by `expireStale` (default 3600 s). */
  readonly expirySecs?: number;
  /** `addRequest` runs `expireStale` at most this often (default 30 s). */
  readonly expiryCheckIntervalSecs?: number;
  /** Clock in milliseconds (default `Date.now`). */
  readonly now?: () => number;
  /** Reports ignored calls (duplicate request id, unknown rank); never throws. */
  readonly onError?: (message: string) => void;
  /** Told which requests `expireStale` freed (also when it runs inside `addRequest`). */
  readonly onExpire?: (requestIds: readonly string[]) => void;
}

export const DEFAULT_ACTIVE_REQUEST_EXPIRY_SECS = 3600;
export const EXPIRY_CHECK_INTERVAL_SECS = 30;

/** What one request adds to a rank. */
export interface AddRequestSpec {
  /** Chained sequence hashes of the prompt's full blocks: deduplicated against the rank's active set. */
  readonly sequenceHashes?: BigUint64Array | null;
  /** Prompt blocks counted without deduplication (no KV reuse assumed). */
  readonly privateBlocks?: number;
  /** Prompt length in tokens (output blocks are counted past it). */
  readonly isl: number;
  /** Uncached prompt tokens added to the rank's prefill backlog until prefill completes. */
  readonly prefillTokens: number;
  /** Expected output length: exclusive blocks then decay as `1 − generated / osl`. */
  readonly expectedOutputTokens?: number;
}

/** Load snapshot of one rank. */
export interface RankLoad {
  readonly activePrefillTokens: number;
  readonly activeBlocks: number;
  readonly activeRequests: number;
}

interface BlockRef {
  count: number;
  /** Sum of the owners' serial numbers: when one owner is left, this is its number. */
  ownerSum: number;
}

interface RankState {
  readonly refs: Map<bigint, BlockRef>;
  readonly members: Set<Tracked>;
  readonly decaying: Set<Tracked>;
  prefillTokens: number;
  privateBlocks: number;
  outputBlocks: number;
}

interface Tracked {
  readonly id: string;
  readonly serial: number;
  readonly rankKey: string;
  readonly rank: RankState;
  readonly hashes: BigUint64Array | null;
  readonly privateBlocks: number;
  readonly isl: number;
  readonly expectedOutputTokens: number | undefined;
  readonly startedAt: number;
  prefillTokens: number;
  outputBlocks: number;
  generated: number;
  /** Kept hashes of this request held by no other request on the rank. */
  exclusive: number;
}

export class ActiveSequences {
  readonly blockSize: number;
  readonly stride: number;
  readonly trackOutputBlocks: boolean;
  private readonly expiryMs: number;
  private readonly checkIntervalMs: number;
  private readonly now: () => number;
  private readonly onError: (message: string) => void;
  private readonly onExpire: ((requestIds: readonly string[]) => void) | undefined;
  private readonly ranks = new Map<string, RankState>();
  private readonly requests = new Map<string, Tracked>();
  private readonly bySerial = new Map<number, Tracked>();
  private nextSerial = 1;
  private lastExpiryCheck: number;

  constructor(options: ActiveSequencesOptions) {
    this.blockSize = options.blockSize;
    this.stride = Math.max(1, Math.floor(options.stride ?? 1));
    this.trackOutputBlocks = options.trackOutputBlocks ?? false;
    this.expiryMs = (options.expirySecs ?? DEFAULT_ACTIVE_REQUEST_EXPIRY_SECS) * 1000;
    this.checkIntervalMs = (options.expiryCheckIntervalSecs ?? EXPIRY_CHECK_INTERVAL_SECS) * 1000;
    this.now = options.now ?? Date.now;
    this.onError = options.onError ?? (() => undefined);
    this.onExpire = options.onExpire;
    this.lastExpiryCheck = this.now();
  }

  addRank(key: string): void {
    if (!this.ranks.has(key)) {
      this.ranks.set(key, { refs: new Map(), members: new Set(), decaying: new Set(), prefillTokens: 0, privateBlocks: 0, outputBlocks: 0 });
    }
  }

  /** Forgets a rank and every request booked on it; returns the freed request ids. */
  removeRank(key: string): string[] {
    const rank = this.ranks.get(key);
    if (!rank) return [];
    const ids = [...rank.members].map((r) => r.id);
    for (const id of ids) this.free(id);
    this.ranks.delete(key);
    return ids;
  }

  hasRank(key: string): boolean {
    return this.ranks.has(key);
  }

  /** Number of active requests over all ranks. */
  get size(): number {
    return this.requests.size;
  }

  /** Rank key a request is booked on. */
  rankOf(requestId: string): string | undefined {
    return this.requests.get(requestId)?.rankKey;
  }

  has(requestId: string): boolean {
    return this.requests.has(requestId);
  }

  load(key: string): RankLoad | undefined {
    const rank = this.ranks.get(key);
    if (!rank) return undefined;
    return { activePrefillTokens: rank.prefillTokens, activeBlocks: this.activeBlocks(rank), activeRequests: rank.members.size };
  }

  private activeBlocks(rank: RankState): number {
    let blocks = rank.refs.size * this.stride + rank.privateBlocks + rank.outputBlocks;
    for (const r of rank.decaying) {
      const decay = Math.max(0, 1 - r.generated / Math.max(r.expectedOutputTokens!, 1));
      blocks -= (1 - decay) * (r.exclusive * this.stride + r.privateBlocks + r.outputBlocks);
    }
    return Math.round(blocks);
  }

  /**
   * Blocks of a prompt (given by its full-block sequence hashes) not already active on the rank.
   * The active set is prefix-closed (every request holds its whole chain), so the longest active
   * prefix is found by binary search.
   */
  newBlocks(key: string, sequenceHashes: BigUint64Array): number {
    const kept = Math.floor(sequenceHashes.length / this.stride);
    const refs = this.ranks.get(key)?.refs;
    if (!refs || refs.size === 0 || kept === 0) return kept * this.stride;
    const at = (j: number) => sequenceHashes[j * this.stride + this.stride - 1]!;
    let lo = 0;
    let hi = kept;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (refs.has(at(mid))) lo = mid + 1;
      else hi = mid;
    }
    return (kept - lo) * this.stride;
  }

  private keptHashes(hashes: BigUint64Array): BigUint64Array {
    if (this.stride === 1) return hashes;
    const kept = new BigUint64Array(Math.floor(hashes.length / this.stride));
    for (let j = 0; j < kept.length; j++) kept[j] = hashes[j * this.stride + this.stride - 1]!;
    return kept;
  }

  /** Books a request on a rank. Returns false (and reports) for a duplicate id or unknown rank. */
  addRequest(requestId: string, key: string, spec: AddRequestSpec): boolean {
    const now = this.now();
    if (now - this.lastExpiryCheck >= this.checkIntervalMs) this.expireStale(now);
    const rank = this.ranks.get(key);
    if (!rank) {
      this.onError(`addRequest ${requestId}: unknown worker rank ${key}`);
      return false;
    }
    if (this.requests.has(requestId)) {
      this.onError(`addRequest: duplicate request id ${requestId} ignored`);
      return false;
    }
    const tracked: Tracked = {
      id: requestId,
      serial: this.nextSerial++,
      rankKey: key,
      rank,
      hashes: spec.sequenceHashes ? this.keptHashes(spec.sequenceHashes) : null,
      privateBlocks: Math.max(0, spec.privateBlocks ?? 0),
      isl: spec.isl,
      expectedOutputTokens: spec.expectedOutputTokens,
      startedAt: now,
      prefillTokens: Math.max(0, spec.prefillTokens),
      outputBlocks: 0,
      generated: 0,
      exclusive: 0,
    };
    this.requests.set(requestId, tracked);
    this.bySerial.set(tracked.serial, tracked);
    rank.members.add(tracked);
    if (this.trackOutputBlocks && tracked.expectedOutputTokens !== undefined) rank.decaying.add(tracked);
    rank.prefillTokens += tracked.prefillTokens;
    rank.privateBlocks += tracked.privateBlocks;
    if (tracked.hashes) {
      for (const h of tracked.hashes) {
        const ref = rank.refs.get(h);
        if (!ref) {
          rank.refs.set(h, { count: 1, ownerSum: tracked.serial });
          tracked.exclusive++;
          continue;
        }
        if (ref.count === 1) this.bySerial.get(ref.ownerSum)!.exclusive--;
        ref.count++;
        ref.ownerSum += tracked.serial;
      }
    }
    return true;
  }

  /** The request's prompt tokens leave the prefill backlog; its blocks stay. Idempotent. */
  markPrefillCompleted(requestId: string): boolean {
    const r = this.requests.get(requestId);
    if (!r) return false;
    r.rank.prefillTokens -= r.prefillTokens;
    r.prefillTokens = 0;
    return true;
  }

  /**
   * Reports how many tokens the request has generated so far; adds output blocks whenever
   * `ceil((isl + generated) / blockSize)` grows. Returns the number of blocks added.
   */
  observeOutput(requestId: string, generatedTokens: number): number {
    const r = this.requests.get(requestId);
    if (!r || !this.trackOutputBlocks || !(generatedTokens >= 0)) return 0;
    r.generated = Math.max(r.generated, generatedTokens);
    const target = Math.ceil((r.isl + r.generated) / this.blockSize) - Math.ceil(r.isl / this.blockSize);
    let added = 0;
    while (r.outputBlocks < target) {
      this.addOutputBlock(requestId);
      added++;
    }
    return added;
  }

  /** Adds one output block (exclusive to the request) when output tracking is on. */
  addOutputBlock(requestId: string): boolean {
    const r = this.requests.get(requestId);
    if (!r || !this.trackOutputBlocks) return false;
    r.outputBlocks++;
    r.rank.outputBlocks++;
    return true;
  }

  /** Drops the request (prefill implied complete). Unknown ids are a no-op returning false. */
  free(requestId: string): boolean {
    const r = this.requests.get(requestId);
    if (!r) return false;
    this.markPrefillCompleted(requestId);
    const rank = r.rank;
    if (r.hashes) {
      for (const h of r.hashes) {
        const ref = rank.refs.get(h);
        if (!ref) continue;
        ref.count--;
        ref.ownerSum -= r.serial;
        if (ref.count === 0) rank.refs.delete(h);
        else if (ref.count === 1) this.bySerial.get(ref.ownerSum)!.exclusive++;
      }
    }
    rank.privateBlocks -= r.privateBlocks;
    rank.outputBlocks -= r.outputBlocks;
    rank.members.delete(r);
    rank.decaying.delete(r);
    this.requests.delete(requestId);
    this.bySerial.delete(r.serial);
    return true;
  }

  /** Frees every request booked more than the expiry duration ago; returns their ids. */
  expireStale(now: number = this.now()): string[] {
    this.lastExpiryCheck = now;
    const stale: string[] = [];
    for (const r of this.requests.values()) if (now - r.startedAt >= this.expiryMs) stale.push(r.id);
    for (const id of stale) this.free(id);
    if (stale.length > 0) this.onExpire?.(stale);
    return stale;
  }
}
