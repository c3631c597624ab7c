import { seededRng, type Rng } from "@dynamo/primitives";
import type { BlockHasher, ChainValue } from "./block-hash.js";
import type { EngineRequest, KvTransferRole, RequestResult, RequestState, RequestStatus, TimeMs } from "./types.js";

/** Where a sequence is in the engine. */
export type SequenceStatus = RequestStatus | "held" | "finished";

/**
 * One request inside the engine: its tokens (prompt, then generated), the pool slots holding its KV
 * (`blocks[i]` holds tokens `[i·bs, (i+1)·bs)`), and its timing. Block hashes are computed on demand
 * and kept across preemption (they depend on the tokens only).
 */
export class Sequence {
  readonly id: string;
  readonly prompt: ArrayLike<number>;
  readonly promptLen: number;
  readonly maxTokens: number;
  readonly loraName: string | null;
  readonly priority: number;
  readonly role: KvTransferRole | null;
  readonly arrivalMs: TimeMs;
  readonly request: EngineRequest;
  status: SequenceStatus = "waiting";
  readonly outputs: number[] = [];
  /** Tokens whose KV is computed. */
  numComputed = 0;
  /** Pool slots, in block order. */
  blocks: number[] = [];
  /** Leading blocks of `blocks` that are full and in the prefix cache. */
  numCommitted = 0;
  /** Prompt (or recomputed) tokens all computed: the next token computed is a decode token. */
  prefillDone = false;
  /** `receive`: blocks allocated for the transferred prompt, ready at `kvReadyAt`. */
  kvAllocated = false;
  kvReadyAt = Infinity;
  /** When the engine's timer for this sequence fires: `send` blocks released, `receive` KV arrived. */
  timerAt = Infinity;
  cachedTokens = -1;
  preemptions = 0;
  scheduledMs: TimeMs | null = null;
  firstTokenMs: TimeMs | null = null;
  lastTokenMs: TimeMs = 0;
  maxItlMs = 0;
  private readonly hashes: bigint[] = [];
  private chainValue: ChainValue | null = null;
  private readonly rng: Rng | null;

  constructor(
    request: EngineRequest,
    role: KvTransferRole | null,
    arrivalMs: TimeMs,
    private readonly vocabSize: number,
  ) {
    this.request = request;
    this.id = request.id;
    this.prompt = request.tokens;
    this.promptLen = request.tokens.length;
    this.maxTokens = role === "send" ? 1 : request.maxTokens;
    this.loraName = request.loraName || null;
    this.priority = request.priority ?? 0;
    this.role = role;
    this.arrivalMs = arrivalMs;
    this.rng = request.outputTokenIds && request.outputTokenIds.length > 0 ? null : seededRng(promptSeed(request));
  }

  /** Prompt plus generated tokens. */
  get numTokens(): number {
    return this.promptLen + this.outputs.length;
  }

  tokenAt(i: number): number {
    return i < this.promptLen ? this.prompt[i]! : this.outputs[i - this.promptLen]!;
  }

  /** Appends `tokens[start, end)` to `out`. */
  copyTokens(start: number, end: number, out: number[]): void {
    const split = Math.min(end, this.promptLen);
    for (let i = start; i < split; i++) out.push(this.prompt[i]!);
    for (let i = Math.max(start, this.promptLen); i < end; i++) out.push(this.outputs[i - this.promptLen]!);
  }

  /** Engine hash of full block `index` (every block before it is hashed first). */
  blockHash(index: number, hasher: BlockHasher, blockSize: number): bigint {
    while (this.hashes.length <= index) {
      const b = this.hashes.length;
      const start = b * blockSize;
      const end = start + blockSize;
      let source: ArrayLike<number> = this.prompt;
      let offset = start;
      if (end > this.promptLen) {
        const block: number[] = [];
        this.copyTokens(start, end, block);
        source = block;
        offset = 0;
      }
      this.chainValue = hasher.chain(this.chainValue, source, offset, this.loraName);
      this.hashes.push(hasher.blockHash(this.chainValue));
    }
    return this.hashes[index]!;
  }

  /** The next generated token id: the request's own list (cycled) or a stream seeded by the prompt. */
  nextOutputToken(): number {
    const given = this.request.outputTokenIds;
    if (this.rng === null) return given![this.outputs.length % given!.length]!;
    return Math.floor(this.rng() * this.vocabSize);
  }

  /** Records a token produced at `timeMs`. */
  recordToken(tokenId: number, timeMs: TimeMs): void {
    if (this.firstTokenMs === null) this.firstTokenMs = timeMs;
    else this.maxItlMs = Math.max(this.maxItlMs, timeMs - this.lastTokenMs);
    this.lastTokenMs = timeMs;
    this.outputs.push(tokenId);
  }

  state(): RequestState {
    return {
      requestId: this.id,
      status: this.status === "held" || this.status === "finished" ? "running" : this.status,
      promptTokens: this.promptLen,
      computedTokens: this.numComputed,
      cachedTokens: Math.max(0, this.cachedTokens),
      outputTokens: this.outputs.length,
    };
  }

  result(reason: RequestResult["reason"], endMs: TimeMs, dataParallelRank: number): RequestResult {
    const n = this.outputs.length;
    const first = this.firstTokenMs;
    return {
      requestId: this.id,
      reason,
      dataParallelRank,
      promptTokens: this.promptLen,
      cachedTokens: Math.max(0, this.cachedTokens),
      outputTokens: n,
      preemptions: this.preemptions,
      arrivalMs: this.arrivalMs,
      scheduledMs: this.scheduledMs,
      firstTokenMs: first,
      endMs,
      ttftMs: first === null ? null : first - this.arrivalMs,
      meanItlMs: first === null || n < 2 ? null : (this.lastTokenMs - first) / (n - 1),
      maxItlMs: first === null || n < 2 ? null : this.maxItlMs,
    };
  }
}

/** A 32-bit seed from the prompt's length and its first and last tokens: same prompt, same output. */
function promptSeed(request: EngineRequest): number {
  const tokens = request.tokens;
  const n = tokens.length;
  let h = Math.imul(n ^ 0x9e3779b9, 0x85ebca6b);
  const mix = (t: number) => {
    h = Math.imul(h ^ t, 0x01000193) >>> 0;
  };
  for (let i = 0; i < Math.min(32, n); i++) mix(tokens[i]!);
  for (let i = Math.max(32, n - 32); i < n; i++) mix(tokens[i]!);
  if (request.loraName) for (let i = 0; i < request.loraName.length; i++) mix(request.loraName.charCodeAt(i));
  return h >>> 0;
}
