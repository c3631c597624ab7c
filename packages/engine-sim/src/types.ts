/**
 * Public types of the simulated engine. KV events have the shape of `@dynamo/kv-events`' vLLM codec
 * types (`VllmBlockStored`, `VllmBlockRemoved`, `VllmAllBlocksCleared`, `VllmEventBatch`), so a batch
 * can be handed to `encodeVllmEventBatch` as it is.
 */

/** Milliseconds on the engine's clock (virtual or real). */
export type TimeMs = number;

/** Where the engine reads the time: a virtual clock set by an event loop, or the system clock. */
export interface Clock {
  now(): TimeMs;
}

/** How engine block hashes are computed (the router recomputes its own from `token_ids` anyway). */
export type BlockHashAlgorithm =
  /** vLLM's `sha256_cbor`: SHA-256 over canonical CBOR `[parent digest, tokens, extra keys]`, low 64 bits. */
  | "sha256_cbor"
  /** Dynamo mocker's: XXH3-64 (seed 1337) local hash chained into the router's sequence hash. */
  | "xxh3";

/** Order in which cached blocks nobody uses are evicted. */
export type EvictionPolicy =
  /** Least recently used leaf first: suffixes go before the prefixes they extend (default). */
  | "lineage"
  /** Least recently used block first, whatever its position in a chain. */
  | "lru";

/** Which running request gives its blocks back when a decode step cannot get a block. */
export type PreemptionMode = "lifo" | "fifo";

/** Role of the engine in disaggregated serving. */
export type DisaggregationMode = "agg" | "prefill" | "decode";

/** What happens to one request's KV cache across a prefill/decode pair. */
export type KvTransferRole =
  /** Compute the prompt, produce one token, then hold the blocks while the decode side pulls them. */
  | "send"
  /** The prompt's KV arrives from a prefill engine: allocate its blocks, wait for the transfer, decode. */
  | "receive";

/** Polynomial step-time model (milliseconds). */
export interface TimingModel {
  /** Prefill compute for `newTokens` prompt tokens not served from the cache (batch total). */
  prefillMs(newTokens: number): number;
  /** One decode step with `activeFraction` of the KV cache in use. */
  decodeMs(activeFraction: number): number;
}

/** Engine configuration; every field has the default of Dynamo's mocker (vLLM mode) unless noted. */
export interface EngineOptions {
  /** KV capacity in blocks (`--num-gpu-blocks-override`). Default 16 384. */
  readonly numGpuBlocks?: number;
  /** Tokens per block (`--block-size`). Default 64. */
  readonly blockSize?: number;
  /** Running-request cap (`--max-num-seqs`). Default 256. */
  readonly maxNumSeqs?: number;
  /** Token budget of one scheduling step (`--max-num-batched-tokens`). Default 8 192. */
  readonly maxNumBatchedTokens?: number;
  /** Longest prompt + output a request may ask for. Default `numGpuBlocks × blockSize`. */
  readonly maxModelLen?: number;
  /** Prefix reuse and KV events (`--enable-prefix-caching`). Default true. */
  readonly enablePrefixCaching?: boolean;
  /** Long prompts are prefilled across steps within the budget (`--enable-chunked-prefill`). Default true. */
  readonly enableChunkedPrefill?: boolean;
  /** Default `lifo` (newest running request first, vLLM v1); `fifo` preempts the oldest. */
  readonly preemptionMode?: PreemptionMode;
  /** Default `lineage`. */
  readonly eviction?: EvictionPolicy;
  /** Fraction of the KV cache a newly admitted request must leave free. Default 0.01. */
  readonly watermark?: number;
  /** Every duration is divided by it; 0 means no delays at all. Default 1. */
  readonly speedupRatio?: number;
  /** Extra divisor of decode steps. Default 1. */
  readonly decodeSpeedupRatio?: number;
  /** Step-time model. Default the polynomial model of Dynamo's mocker (`POLYNOMIAL_TIMING`). */
  readonly timing?: TimingModel;
  /** Default `agg`; `prefill` makes every request `send`, `decode` makes every request `receive`. */
  readonly disaggregationMode?: DisaggregationMode;
  /** KV transfer bandwidth in GB/s (`--kv-transfer-bandwidth`). Default 64. */
  readonly kvTransferBandwidth?: number;
  /**
   * KV bytes per token: `layers × 2 × kv_heads × head_dim × dtype_bytes`. Default 131 072 (32 layers,
   * 8 KV heads of 128, 16-bit: a Llama-3-8B-class model; project default).
   */
  readonly kvBytesPerToken?: number;
  /** LoRA adapters a step may use (vLLM's `max_loras`). Default 1. */
  readonly maxLoras?: number;
  /** Time to load an adapter that is not resident, added to the step that first uses it. Default 25 ms (project default). */
  readonly loraLoadTimeMs?: number;
  /** Engine block hash. Default `sha256_cbor` (vLLM's). */
  readonly blockHash?: BlockHashAlgorithm;
  /** Seed of `sha256_cbor`'s `NONE_HASH` (vLLM's `PYTHONHASHSEED`). Default `"vllm-none-hash"`. */
  readonly hashSeed?: string;
  /** `medium` of every event. Default `"GPU"`. */
  readonly medium?: string;
  /** Vocabulary of generated token ids. Default 151 643. */
  readonly vocabSize?: number;
  /** Data-parallel rank of this engine; batches carry it as `dataParallelRank`. Default 0. */
  readonly dataParallelRank?: number;
  /**
   * Runs a stretch of identical decode steps (nobody joining, leaving, filling a block or streaming) as
   * one event; results are exactly those of stepping one by one. Default true.
   */
  readonly fastForward?: boolean;
  /** Receives one batch per scheduling step that changed the cache (and one per cache reset). */
  readonly onKvEvents?: (batch: KvEventBatch) => void;
  /**
   * Receives exceptions thrown by `onToken`, `onFinish` or `onKvEvents` (a server logs them and carries
   * on). Without it they are rethrown from `runNext` after the event is fully processed.
   */
  readonly onCallbackError?: (err: unknown) => void;
}

/** `EngineOptions` with every default filled in. */
export type EngineConfig = Required<Omit<EngineOptions, "onKvEvents" | "onCallbackError">>;

/** A request for one engine (or one DP rank). */
export interface EngineRequest {
  /** Unique among the engine's unfinished requests. */
  readonly id: string;
  /** Prompt token ids (at least one). Kept by reference: leave them unchanged until the request ends. */
  readonly tokens: ArrayLike<number>;
  /** Tokens to generate (EOS is not simulated). At least 1. */
  readonly maxTokens: number;
  /** LoRA adapter; its blocks are salted with the name, as vLLM does. */
  readonly loraName?: string | null;
  /** Lower is scheduled first (vLLM's priority policy); ties keep arrival order. Default 0. */
  readonly priority?: number;
  /** Role in a prefill/decode pair; default from the engine's `disaggregationMode`. `null` forces aggregated. */
  readonly kvTransfer?: KvTransferRole | null;
  /** Output token ids to emit (cycled if shorter than `maxTokens`); default deterministic ones from the prompt. */
  readonly outputTokenIds?: ArrayLike<number>;
  /** Called once per generated token, when the step that produced it ends. */
  readonly onToken?: (token: TokenOutput) => void;
  /** Called once when the request finishes, is cancelled or hands its KV over. */
  readonly onFinish?: (result: RequestResult) => void;
}

/** One generated token. */
export interface TokenOutput {
  readonly requestId: string;
  readonly tokenId: number;
  /** 0 for the first token. */
  readonly index: number;
  readonly timeMs: TimeMs;
}

/**
 * Why a request ended: `length` (its `maxTokens` were produced), `cancelled`, or `transferred` (a
 * `send` request produced its token; its blocks stay held for `transferMs`).
 */
export type FinishReason = "length" | "cancelled" | "transferred";

/** Outcome and timing of one request. */
export interface RequestResult {
  readonly requestId: string;
  readonly reason: FinishReason;
  readonly dataParallelRank: number;
  readonly promptTokens: number;
  /** Prompt tokens served from the prefix cache when the request was first scheduled (`cached_tokens`). */
  readonly cachedTokens: number;
  readonly outputTokens: number;
  /** Times the request lost its blocks to preemption and was recomputed. */
  readonly preemptions: number;
  readonly arrivalMs: TimeMs;
  /** First scheduling (null if never scheduled). */
  readonly scheduledMs: TimeMs | null;
  readonly firstTokenMs: TimeMs | null;
  readonly endMs: TimeMs;
  /** `firstTokenMs − arrivalMs` (null without a token). */
  readonly ttftMs: number | null;
  /** Mean gap between consecutive tokens (null with fewer than two). */
  readonly meanItlMs: number | null;
  /** Largest gap between consecutive tokens (null with fewer than two). */
  readonly maxItlMs: number | null;
  /** For `transferred`: the blocks held for the decode side (pool slot ids, like vLLM's block ids). */
  readonly transferBlockIds?: readonly number[];
  /** For `transferred`: how long the blocks stay held (the KV-transfer delay). */
  readonly transferMs?: number;
}

/** Where a request is. */
export type RequestStatus = "waiting" | "transferring" | "running";

/** A snapshot of an unfinished request. */
export interface RequestState {
  readonly requestId: string;
  readonly status: RequestStatus;
  readonly promptTokens: number;
  /** Tokens whose KV is computed (prompt and output). */
  readonly computedTokens: number;
  readonly cachedTokens: number;
  readonly outputTokens: number;
}

/** Load signals of one engine, as a router or a `/metrics` endpoint reads them. */
export interface EngineLoad {
  readonly dataParallelRank: number;
  /** Waiting requests, including preempted ones and those waiting for a KV transfer. */
  readonly waiting: number;
  readonly running: number;
  readonly totalBlocks: number;
  /** Blocks used by requests (running, transferring, or held for a transfer). */
  readonly activeBlocks: number;
  /** Cached blocks nobody uses (the reusable prefix cache; they count as free). */
  readonly cachedBlocks: number;
  /** `activeBlocks / totalBlocks` (vLLM's `kv_cache_usage_perc`, cached free blocks counting as free). */
  readonly kvUsage: number;
  /** Prompt tokens still to prefill, over waiting and running requests. */
  readonly pendingPrefillTokens: number;
  /** Adapters of running requests. */
  readonly runningLoras: readonly string[];
  /** Adapters of waiting requests. */
  readonly waitingLoras: readonly string[];
  readonly maxLoras: number;
}

/** Monotonic counters of one engine (vLLM's `*_total` series). */
export interface EngineStats {
  readonly steps: number;
  /** Time spent in steps (ms). */
  readonly busyMs: number;
  readonly promptTokens: number;
  readonly generationTokens: number;
  /** Prompt tokens looked up in the prefix cache (at first scheduling). */
  readonly prefixCacheQueries: number;
  /** Of those, tokens found. */
  readonly prefixCacheHits: number;
  readonly finished: number;
  readonly cancelled: number;
  readonly transferred: number;
  readonly preemptions: number;
  readonly storedBlocks: number;
  readonly removedBlocks: number;
  readonly loraLoads: number;
}

/** `BlockStored`: a run of newly cached full blocks continuing `parentBlockHash` (null: from block 0). */
export interface BlockStoredEvent {
  readonly type: "BlockStored";
  readonly blockHashes: readonly bigint[];
  readonly parentBlockHash: bigint | null;
  readonly tokenIds: readonly number[];
  readonly blockSize: number;
  /** Deprecated in vLLM; always null. */
  readonly loraId: number | null;
  readonly medium: string | null;
  readonly loraName: string | null;
}

/** `BlockRemoved`: cached blocks evicted (emitted when their slots are reused, as vLLM does). */
export interface BlockRemovedEvent {
  readonly type: "BlockRemoved";
  readonly blockHashes: readonly bigint[];
  readonly medium: string | null;
}

/** `AllBlocksCleared`: the prefix cache was reset. */
export interface AllBlocksClearedEvent {
  readonly type: "AllBlocksCleared";
}

export type KvEvent = BlockStoredEvent | BlockRemovedEvent | AllBlocksClearedEvent;

/** The events of one scheduling step (vLLM's `KVEventBatch`). */
export interface KvEventBatch {
  /** Clock time of the step's end, in seconds. */
  readonly ts: number;
  readonly events: readonly KvEvent[];
  readonly dataParallelRank: number;
}

/** One operation of a workload played by `playWorkload`, `dt` ms after the previous one. */
export type WorkloadOp =
  | { kind: "arrive"; dt: number; tokens: readonly number[]; maxTokens: number; lora: string | null; stream?: boolean }
  | { kind: "cancel"; dt: number; pick: number }
  | { kind: "reset"; dt: number; rank: number };

/** Callbacks of `playWorkload`. */
export interface WorkloadHooks {
  onFinish?: (result: RequestResult) => void;
  /** Given to the requests of `stream` arrivals. */
  onToken?: (token: TokenOutput) => void;
  /** After each arrival (accepted or not), with the request id. */
  afterArrival?: (id: string) => void;
}

/** Options of `EngineEventSource`. */
export interface EventSourceOptions {
  /** Tokens per block. */
  readonly blockSize: number;
  /** KV capacity in blocks (small, so that blocks get evicted). Default 256. */
  readonly numGpuBlocks?: number;
  /** PRNG seed of the workload and of the engine's hash seed. Default 1. */
  readonly seed?: number;
  /** Engine block hashes (spread over the whole u64 range either way). Default `sha256_cbor`. */
  readonly blockHash?: BlockHashAlgorithm;
  readonly dataParallelRank?: number;
  /** LoRA adapter of every request (its blocks are salted and events carry its name). Default none. */
  readonly loraName?: string | null;
  readonly medium?: string;
  /** Prefix families prompts share. Default 4. */
  readonly prefixFamilies?: number;
  /** Blocks of each prefix family. Default 8. */
  readonly maxPromptBlocks?: number;
  /** Mean requests arriving per engine event while fewer than 8 wait (more: larger batches). Default 2. */
  readonly arrivalsPerStep?: number;
}
