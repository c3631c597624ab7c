import type { WorkerInfo, WorkerRegistry } from "@dynamo/discovery";
import type { LogSink, RecoveryPolicy } from "@dynamo/kv-events";
import type { WorkerRank } from "@dynamo/kv-indexer";
import type {
  ActiveSequenceEvent,
  DecisionAudit,
  Environment,
  KvRouterOptions,
  RouteDecision,
} from "@dynamo/kv-router";
import type { TokenizerRegistry, TokenizerRegistryOptions } from "@dynamo/tokenizer";
import type { NatsConnection } from "@nats-io/transport-node";
import type { ServiceSettings } from "./config.js";
import type { BodyHints } from "./request.js";

/** How to build a `RouterService`. Every field is optional; `RouterService.fromEnv` fills them from `DYN_*`. */
export interface RouterServiceOptions {
  /** Router settings and hooks (`KvRouter` options: block size, cost knobs, `now`, `rng`, ...). */
  readonly router?: KvRouterOptions;
  /** Service settings (discovery backend, event plane, NATS, model path); see `ServiceSettings`. */
  readonly settings?: Partial<ServiceSettings>;
  /**
   * Where workers come from: a registry of `@dynamo/discovery` (started and stopped by the service
   * unless it is already running), or none (`addWorker` only). Default: the registry `settings.discovery`
   * names, configured from `env`.
   */
  readonly discovery?: WorkerRegistry | null;
  /** An open NATS connection to use (kept open on `stop`) instead of connecting from the settings. */
  readonly nats?: NatsConnection;
  /**
   * Tokenizers: a registry to share (kept open on `stop`), options for the service's own, or `false` for
   * a service that routes token ids only. Default: the service's own registry (embedded Qwen3 default).
   */
  readonly tokenizer?: TokenizerRegistry | TokenizerRegistryOptions | false;
  /** Environment the discovery backend is configured from. Default `process.env`. */
  readonly env?: Environment;
  /** Gap recovery of the NATS event plane. */
  readonly recovery?: Partial<RecoveryPolicy>;
  /** Replica sync: every booking change of this service, to publish to the other replicas. */
  readonly onBookingChange?: (event: ActiveSequenceEvent) => void;
  /** Replica sync: every few booked decisions, kept for re-scoring against peers' concurrent bookings. */
  readonly onDecisionAudit?: (audit: DecisionAudit) => void;
  /** Where warnings go (rate-limited where they can repeat). Default `console.warn`. */
  readonly log?: LogSink;
}

/**
 * A worker as the service registers it: discovery's `WorkerInfo`, of which only `id` is required when
 * added in-process. Role `both` (an aggregated worker) serves whole requests.
 */
export type ServiceWorker = Pick<WorkerInfo, "id"> & Partial<Omit<WorkerInfo, "id">>;

/** A request after tokenization: what `routeTokenized` takes. */
export interface TokenizedRequest {
  readonly tokens: Uint32Array;
  /** Whether the ids stand for the whole request (may be injected as `nvext.token_data`). */
  readonly injectable: boolean;
  /** The tokenizer's model name (`default` when the default model served it), or `""` for given ids. */
  readonly model: string;
  /** Wall-clock milliseconds spent tokenizing (0 for given ids). */
  readonly tokenizeMs: number;
  /** Routing hints read from the body (`nvext.cache_salt` / `cache_salt`, `nvext.agent_hints`); the request's own fields win. */
  readonly hints?: BodyHints;
  /** The LoRA adapter the request's `model` names (tokenized with its base model's tokenizer). */
  readonly loraName?: string;
}

/** A routed (and, unless query-only, booked) request. */
export interface ServiceDecision extends RouteDecision {
  /** The token ids the decision was made on (inject them as `nvext.token_data` when `injectable`). */
  readonly tokens: Uint32Array;
  readonly injectable: boolean;
  readonly model: string;
  /** HTTP address (`host:port`) of the decode worker rank, when discovery gave one. */
  readonly endpoint: string | undefined;
  /** HTTP address of the prefill worker rank (disaggregated). */
  readonly prefillEndpoint: string | undefined;
  /** Wall-clock milliseconds: tokenization, then selection and booking. */
  readonly timings: { readonly tokenizeMs: number; readonly routeMs: number };
}

/** What the service is doing, for health checks and logs. */
export interface ServiceStatus {
  readonly ready: boolean;
  /** Why it is not ready, when it is not. */
  readonly waitingFor: string | undefined;
  readonly workers: number;
  readonly blockSize: number | undefined;
  readonly eventPlane: "nats" | "zmq" | "none";
  /** Event subscriptions still synchronising. */
  readonly pendingSyncs: number;
  readonly activeBookings: number;
  /** Workers refused (block size differing from the router's), by id. */
  readonly refusedWorkers: number;
  /** KV events per worker: applied to the index, rejected by it, and blocks of a foreign block size. */
  readonly workerEvents: readonly WorkerEventStatus[];
}

/** KV-event counters of one worker (all ranks and storage tiers). */
export interface WorkerEventStatus {
  readonly workerId: bigint;
  /** Events applied in whole or in part. */
  readonly applied: number;
  /** Events the index refused in whole or in part (unknown parent or block, invalid data). */
  readonly rejected: number;
  /** vLLM `BlockStored` events whose block size differs from the router's (not indexed). */
  readonly wrongBlockSize: number;
}

/** Re-exported for convenience: a routing target. */
export type { WorkerRank };
