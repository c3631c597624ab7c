import type { DisaggregationMode, EvictionPolicy, PreemptionMode } from "@dynamo/engine-sim";
import type { VllmEncoding } from "@dynamo/kv-events";

/** Options of `startMocker` (the CLI flags, camelCased). Only `model` has no default. */
export interface MockerOptions {
  /** Model name served (`--model-path`): an embedded tokenizer's model name, or a tokenizer directory. */
  readonly model?: string;
  /** Name in `/v1/models` and the `model` field requests must carry. Default: `model`. */
  readonly servedModelName?: string;
  /** LoRA adapters served besides the base model: requests naming one run with its salted blocks. Default none. */
  readonly loraModules?: readonly string[];
  /** Adapters an engine step may use at once (vLLM's `max_loras`). Default 1. */
  readonly maxLoras?: number;
  /** Host the HTTP servers listen on. Default `127.0.0.1` (`0.0.0.0` from the CLI). */
  readonly host?: string;
  /** HTTP port of worker 0, DP rank 0; worker w rank r listens on `port + w × dataParallelSize + r`. 0: free ports. Default 0. */
  readonly port?: number;
  /** Simulated workers in this process. Default 1. */
  readonly numWorkers?: number;
  readonly dataParallelSize?: number;
  readonly blockSize?: number;
  readonly numGpuBlocks?: number;
  readonly maxNumSeqs?: number;
  readonly maxNumBatchedTokens?: number;
  /** Longest prompt + output. Default `numGpuBlocks × blockSize`. */
  readonly maxModelLen?: number;
  /** Divides every modelled duration; 0 = no delays. Default 1. */
  readonly speedupRatio?: number;
  readonly decodeSpeedupRatio?: number;
  readonly enablePrefixCaching?: boolean;
  readonly preemptionMode?: PreemptionMode;
  readonly eviction?: EvictionPolicy;
  readonly disaggregationMode?: DisaggregationMode;
  readonly kvTransferBandwidth?: number;
  readonly kvBytesPerToken?: number;
  /** `max_tokens` of a request that gives none. Default 16. */
  readonly defaultMaxTokens?: number;
  /** ZeroMQ PUB base port per worker (rank r on port + r); one entry for several workers: worker w on base + w × dpSize. */
  readonly zmqKvEventsPorts?: readonly number[];
  /** ZeroMQ ROUTER replay base port per worker, same layout. */
  readonly zmqReplayPorts?: readonly number[];
  readonly kvEventsEncoding?: VllmEncoding;
  /** Address other processes reach this one at (topic, discovery, `kv_transfer_params`). Default `POD_IP` or `127.0.0.1`. */
  readonly advertiseHost?: string;
  /** `x-inference-pod` value. Default `POD_NAME`, else the worker's name. */
  readonly podName?: string;
  /** Prefix of worker names (`<prefix>-<w>`). Default `mocker-<pid>`. */
  readonly workerNamePrefix?: string;
  /** Write this process's workers to a static discovery file (YAML list). */
  readonly discoveryFile?: string;
  /** Register the workers in NATS discovery on these servers. */
  readonly natsServers?: readonly string[];
  /** Dynamo namespace / component of the registration. Default `vllm-agg` (discovery's default namespace) / `backend`. */
  readonly namespace?: string;
  readonly component?: string;
  /** Largest request body accepted. Default 32 MiB. */
  readonly maxBodyBytes?: number;
  /** Requests kept in `received`. Default 1 000. */
  readonly receivedCapacity?: number;
  /** Tokenizer worker threads. Default 1. */
  readonly tokenizerThreads?: number;
  /** Warnings (callback errors, registration problems). Default `console.warn`. */
  readonly log?: (message: string) => void;
}

/** A request as one worker received it. */
export interface ReceivedRequest {
  readonly workerId: bigint;
  readonly dpRank: number;
  readonly path: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** Prompt ids the engine served (empty when the request was refused before tokenization). */
  readonly promptTokenIds: readonly number[];
  /** False when the ids came from `nvext.token_data` (or a token-id prompt). */
  readonly tokenizedByMocker: boolean;
  readonly kvTransferParams?: Readonly<Record<string, unknown>>;
  readonly stream: boolean;
}

/** One simulated worker of a running mocker. */
export interface MockerWorker {
  /** Worker id (discovery's, from the worker's name). */
  readonly id: bigint;
  readonly name: string;
  /** Base URL of DP rank 0 (`http://host:port`). */
  readonly url: string;
  readonly port: number;
  /** HTTP port of each DP rank. */
  readonly rankPorts: readonly number[];
  /** ZeroMQ PUB port of DP rank 0, when events are published. */
  readonly zmqPort?: number;
  readonly replayPort?: number;
}

/** Faults the next requests get (tests of callers' error handling). */
export interface InjectedFailure {
  /** HTTP status to answer with. */
  readonly status: number;
  /** How many requests get it. Default 1. */
  readonly count?: number;
  /** Response body; default a vLLM error object naming the status. */
  readonly body?: unknown;
}

/** A running mocker. */
export interface MockerHandle {
  /** Base URL of the first worker. */
  readonly url: string;
  readonly workers: readonly MockerWorker[];
  /** The last requests received (bounded ring, oldest first). */
  readonly received: ReadonlyArray<ReceivedRequest>;
  /** Unfinished requests (waiting or running) of one worker, or of all. */
  activeSequences(workerId?: bigint): number;
  /** Blocks held by unfinished requests, of one worker or all. */
  activeBlocks(workerId?: bigint): number;
  /** Cached full blocks nobody uses (the prefix cache), of one worker or all. */
  cachedBlocks(workerId?: bigint): number;
  /** The next `count` model requests (chat, completions) of any worker are answered with `status`. */
  failNext(failure: InjectedFailure): void;
  /** The next model request's connection is destroyed without an answer. */
  dropNextConnection(): void;
  /** Stops every server, socket, registration and timer. */
  close(): Promise<void>;
}
