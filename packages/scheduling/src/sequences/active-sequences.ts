import { ADDED_NEW, BlockCounts } from "./block-counts.js";

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
  /**
   * Lease of a booking: requests whose lease is older than this are freed by `expireStale` (default
   * 300 s). Booking starts the lease; `renew`, `markPrefillCompleted` and `observeOutput` (output
   * progress) restart it, so a long healthy stream is never expired while a lost free is.
   */
  readonly expirySecs?: number;
  /** `addRequest` runs `expireStale` at most this often (default 30 s). */
  readonly expiryCheckIntervalSecs?: number;
  /** Clock in milliseconds (default `Date.now`). */
  readonly now?: () => number;
  /** Reports ignored calls (duplicate request id, unknown rank); never throws. */
  readonly onError?: (message: string) => void;
  /** Told which requests `expireStale` freed (also when it runs inside `addRequest`). */
  readonly onExpire?: (requestIds: readonly string[]) => void;
  /** Told about every applied change (for replica sync); exceptions it throws are ignored. */
  readonly onChange?: (change: SequenceChange) => void;
}

/** One applied change to the bookkeeping, as replicas exchange them. */
export type SequenceChange =
  | { readonly type: "add"; readonly requestId: string; readonly rankKey: string; readonly spec: AddRequestSpec }
  | { readonly type: "prefill_completed"; readonly requestId: string; readonly rankKey: string }
  /** Output grew past a block boundary: `generated` tokens so far (also renews the booking's lease). */
  | { readonly type: "output"; readonly requestId: string; readonly rankKey: string; readonly generated: number }
  | { readonly type: "free"; readonly requestId: string; readonly rankKey: string };

export const DEFAULT_ACTIVE_REQUEST_EXPIRY_SECS = 300;
export const EXPIRY_CHECK_INTERVAL_SECS = 30;

/** What one request adds to a rank. */
export interface AddRequestSpec {
  /** Chained sequence hashes of the prompt's full blocks: deduplicated against the rank's active set. */
  readonly sequenceHashes?: BigUint64Array | null;
  /** `trackingKeys(sequenceHashes)` when the caller already has them (saves recomputing). */
  readonly trackingKeys?: TrackingKeys;
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

/**
 * Tracking keys of a prompt: each kept block hash as its two int32 halves (`keys` the low, `checks` the
 * high half), so lookups never hash a BigInt or box a double and stay exact.
 */
export interface TrackingKeys {
  readonly keys: readonly number[];
  readonly checks: readonly number[];
}

/** A rank's bookkeeping, returned by `rankHandle` so hot loops skip the key lookup. */
export interface RankHandle {
  readonly key: string;
}

interface RankState extends RankHandle {
  readonly blocks: BlockCounts;
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
  readonly hashes: TrackingKeys | null;
  readonly privateBlocks: number;
  readonly isl: number;
  readonly expectedOutputTokens: number | undefined;
  /** When the lease was last started or renewed. */
  leaseFrom: number;
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
  private readonly onChange: ((change: SequenceChange) => void) | undefined;
  private readonly ranks = new Map<string, RankState>();
  private readonly requests = new Map<string, Tracked>();
  private readonly bySerial = new Map<number, Tracked>();
  /** Which ranks hold each request-first block (by the low half of its hash), so a lookup skips every other rank. */
  private readonly firstBlockHolders = new Map<
    number,
    Array<{ readonly check: number; readonly rank: RankState; count: number }>
  >();
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
    this.onChange = options.onChange;
    this.lastExpiryCheck = this.now();
  }

  addRank(key: string): void {
    if (!this.ranks.has(key)) {
      this.ranks.set(key, {
        key,
        blocks: new BlockCounts(),
        members: new Set(),
        decaying: new Set(),
        prefillTokens: 0,
        privateBlocks: 0,
        outputBlocks: 0,
      });
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

  /** Handle of a registered rank (valid until the rank is removed). */
  rankHandle(key: string): RankHandle | undefined {
    return this.ranks.get(key);
  }

  load(key: string): RankLoad | undefined {
    const rank = this.ranks.get(key);
    return rank && this.loadOf(rank);
  }

  loadOf(handle: RankHandle): RankLoad {
    return {
      activePrefillTokens: this.activePrefillTokensOf(handle),
      activeBlocks: this.activeBlocksOf(handle),
      activeRequests: this.activeRequestsOf(handle),
    };
  }

  activePrefillTokensOf(handle: RankHandle): number {
    return (handle as RankState).prefillTokens;
  }

  activeRequestsOf(handle: RankHandle): number {
    return (handle as RankState).members.size;
  }

  /**
   * Active blocks of the rank: unique prompt blocks + output blocks, less the OSL decay, rounded half
   * up. A decaying request's blocks count `1 − generated / osl` each, so it takes away
   * `min(generated, osl) · blocks / osl`; when the floating-point total lands next to a half, the exact
   * rational total decides the rounding.
   */
  activeBlocksOf(handle: RankHandle): number {
    const rank = handle as RankState;
    const whole = rank.blocks.size * this.stride + rank.privateBlocks + rank.outputBlocks;
    if (rank.decaying.size === 0) return whole;
    let blocks = whole;
    for (const r of rank.decaying) {
      const osl = Math.max(r.expectedOutputTokens!, 1);
      blocks -= (Math.min(r.generated, osl) * this.decayingBlocks(r)) / osl;
    }
    if (Math.abs(blocks - Math.floor(blocks) - 0.5) > 1e-6) return Math.round(blocks);
    return this.exactRoundedBlocks(rank, whole);
  }

  private decayingBlocks(r: Tracked): number {
    return r.exclusive * this.stride + r.privateBlocks + r.outputBlocks;
  }

  /** `activeBlocksOf` in exact rational arithmetic (generated token counts are integers). */
  private exactRoundedBlocks(rank: RankState, whole: number): number {
    let num = BigInt(whole);
    let den = 1n;
    for (const r of rank.decaying) {
      const osl = BigInt(Math.max(r.expectedOutputTokens!, 1));
      const taken = BigInt(Math.min(Math.floor(r.generated), Number(osl))) * BigInt(this.decayingBlocks(r));
      num = num * osl - taken * den;
      den *= osl;
    }
    // Round half up: floor((2·num + den) / (2·den)), num ≥ 0.
    return Number((2n * num + den) / (2n * den));
  }

  /**
   * Tracking keys of a prompt's full-block sequence hashes, one per kept block (every `stride`-th).
   * Compute once per request and pass to `newBlocksOf` for every rank.
   */
  trackingKeys(sequenceHashes: BigUint64Array): TrackingKeys {
    const words = new Int32Array(sequenceHashes.buffer, sequenceHashes.byteOffset, sequenceHashes.length * 2);
    const n = Math.floor(sequenceHashes.length / this.stride);
    // Plain arrays: small typed arrays would each allocate an off-heap buffer on this hot path.
    const keys = new Array<number>(n);
    const checks = new Array<number>(n);
    for (let j = 0; j < n; j++) {
      const i = j * this.stride + this.stride - 1;
      keys[j] = words[2 * i]!;
      checks[j] = words[2 * i + 1]!;
    }
    return { keys, checks };
  }

  /**
   * Blocks of a prompt (given by its `trackingKeys`) not already active on the rank. The active set is
   * prefix-closed (every request holds its whole chain), so the longest active prefix is found by
   * binary search.
   */
  newBlocks(key: string, keys: TrackingKeys): number {
    const rank = this.ranks.get(key);
    return rank ? this.newBlocksOf(rank, keys) : keys.keys.length * this.stride;
  }

  /**
   * The ranks whose active set contains the prompt's first kept block: on every other rank all of the
   * prompt's blocks are new. Lets callers probe only these ranks.
   */
  ranksHoldingFirstBlock(tracking: TrackingKeys): RankHandle[] {
    if (tracking.keys.length === 0) return [];
    const entries = this.firstBlockHolders.get(tracking.keys[0]!);
    if (!entries) return [];
    const check = tracking.checks[0]!;
    return entries.filter((e) => e.check === check).map((e) => e.rank);
  }

  private trackFirstBlock(rank: RankState, tk: TrackingKeys, delta: 1 | -1): void {
    if (tk.keys.length === 0) return;
    const key = tk.keys[0]!;
    const check = tk.checks[0]!;
    let entries = this.firstBlockHolders.get(key);
    const at = entries?.findIndex((e) => e.check === check && e.rank === rank) ?? -1;
    if (delta === 1) {
      if (at >= 0) entries![at]!.count++;
      else if (entries) entries.push({ check, rank, count: 1 });
      else this.firstBlockHolders.set(key, (entries = [{ check, rank, count: 1 }]));
      return;
    }
    if (at < 0) return;
    if (--entries![at]!.count > 0) return;
    entries!.splice(at, 1);
    if (entries!.length === 0) this.firstBlockHolders.delete(key);
  }

  newBlocksOf(handle: RankHandle, tracking: TrackingKeys): number {
    const kept = tracking.keys.length;
    const blocks = (handle as RankState).blocks;
    const { keys, checks } = tracking;
    if (blocks.size === 0 || kept === 0 || !blocks.has(keys[0]!, checks[0]!)) return kept * this.stride;
    let lo = 1;
    let hi = kept;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (blocks.has(keys[mid]!, checks[mid]!)) lo = mid + 1;
      else hi = mid;
    }
    return (kept - lo) * this.stride;
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
      hashes: spec.sequenceHashes ? (spec.trackingKeys ?? this.trackingKeys(spec.sequenceHashes)) : null,
      privateBlocks: Math.max(0, spec.privateBlocks ?? 0),
      isl: spec.isl,
      expectedOutputTokens: spec.expectedOutputTokens,
      leaseFrom: now,
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
    const tk = tracked.hashes;
    if (tk) {
      this.trackFirstBlock(rank, tk, 1);
      for (let j = 0; j < tk.keys.length; j++) {
        const result = rank.blocks.add(tk.keys[j]!, tk.checks[j]!, tracked.serial);
        if (result === ADDED_NEW) tracked.exclusive++;
        else if (result > 0) this.bySerial.get(result)!.exclusive--;
      }
    }
    this.notify({ type: "add", requestId, rankKey: key, spec });
    return true;
  }

  private notify(change: SequenceChange): void {
    if (!this.onChange) return;
    try {
      this.onChange(change);
    } catch {
      // A failing listener must not break the bookkeeping.
    }
  }

  /** Restarts the request's lease (the response is making progress). False for unknown ids. */
  renew(requestId: string): boolean {
    const r = this.requests.get(requestId);
    if (!r) return false;
    r.leaseFrom = this.now();
    return true;
  }

  /** The request's prompt tokens leave the prefill backlog; its blocks stay; the lease restarts. Idempotent. */
  markPrefillCompleted(requestId: string): boolean {
    const r = this.requests.get(requestId);
    if (!r) return false;
    r.leaseFrom = this.now();
    if (r.prefillTokens !== 0) {
      r.rank.prefillTokens -= r.prefillTokens;
      r.prefillTokens = 0;
      this.notify({ type: "prefill_completed", requestId, rankKey: r.rankKey });
    }
    return true;
  }

  /**
   * Reports how many tokens the request has generated so far; adds output blocks whenever
   * `ceil((isl + generated) / blockSize)` grows (output tracking on). Restarts the request's lease.
   * Returns the number of blocks added.
   */
  observeOutput(requestId: string, generatedTokens: number): number {
    const r = this.requests.get(requestId);
    if (!r) return 0;
    r.leaseFrom = this.now();
    if (!(generatedTokens > r.generated)) return 0;
    const blocksBefore = Math.ceil((r.isl + r.generated) / this.blockSize);
    r.generated = generatedTokens;
    const blocksAfter = Math.ceil((r.isl + r.generated) / this.blockSize);
    let added = 0;
    if (this.trackOutputBlocks) {
      const target = blocksAfter - Math.ceil(r.isl / this.blockSize);
      while (r.outputBlocks < target) {
        this.addOutputBlock(requestId);
        added++;
      }
    }
    // Shared once per block of output: enough for peers' output blocks and decay, and it renews their lease.
    if (blocksAfter > blocksBefore)
      this.notify({ type: "output", requestId, rankKey: r.rankKey, generated: r.generated });
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
    const rank = r.rank;
    rank.prefillTokens -= r.prefillTokens;
    const tk = r.hashes;
    if (tk) {
      this.trackFirstBlock(rank, tk, -1);
      for (let j = 0; j < tk.keys.length; j++) {
        const result = rank.blocks.remove(tk.keys[j]!, tk.checks[j]!, r.serial);
        if (result > 0) this.bySerial.get(result)!.exclusive++;
      }
    }
    rank.privateBlocks -= r.privateBlocks;
    rank.outputBlocks -= r.outputBlocks;
    rank.members.delete(r);
    rank.decaying.delete(r);
    this.requests.delete(requestId);
    this.bySerial.delete(r.serial);
    this.notify({ type: "free", requestId, rankKey: r.rankKey });
    return true;
  }

  /** Frees every request whose lease is older than the expiry duration; returns their ids. */
  expireStale(now: number = this.now()): string[] {
    this.lastExpiryCheck = now;
    const stale: string[] = [];
    for (const r of this.requests.values()) if (now - r.leaseFrom >= this.expiryMs) stale.push(r.id);
    for (const id of stale) this.free(id);
    if (stale.length > 0) this.onExpire?.(stale);
    return stale;
  }
}
