import { z } from "zod";
import {
  ACCEPTED,
  RouterConfigError,
  readSettings,
  schemas,
  setting,
  validateSettings,
  type Environment,
  type Setting,
} from "./settings-table.js";

/**
 * Router configuration: one table of settings, read from `DYN_*` environment variables or given as a
 * plain options object, validated by the same zod schema either way. Settings of the servers that
 * compose the router (event plane, NATS, discovery) live in their own tables.
 */

export const ROUTER_MODES = ["kv", "round-robin", "random", "least-loaded", "power-of-two", "direct"] as const;
export type RouterMode = (typeof ROUTER_MODES)[number];

/** Every router setting (the README lists them with their variables). All optional in `KvRouterOptions`; defaults below. */
export interface KvRouterSettings {
  mode: RouterMode;
  blockSize: number;
  overlapScoreCredit: number;
  overlapScoreCreditDecay: number;
  prefillLoadScale: number;
  decodeActiveRequestWeight: number;
  hostCacheHitWeight: number;
  diskCacheHitWeight: number;
  temperature: number;
  /** Deprecated: sets `prefillLoadScale`; 0 also sets the credit to 0. Unset by default. */
  overlapScoreWeight: number | undefined;
  useKvEvents: boolean;
  ttlSecs: number;
  approximateCachePolicy: "ttl" | "lru";
  predictedTtlSecs: number | undefined;
  maxApproxEntries: number;
  replicaSync: boolean;
  /** With `replicaSync`: every this many booked decisions one is re-scored once peers' bookings arrive (0: none). */
  replicaAuditEvery: number;
  /** With `replicaSync`: costs within this many blocks per prompt block of the cheapest count as ties. */
  replicaTieBand: number;
  trackActiveBlocks: boolean;
  trackOutputBlocks: boolean;
  assumeKvReuse: boolean;
  trackPrefillTokens: boolean;
  prefillLoadModel: "none" | "aic";
  activeSequenceStride: number;
  activeRequestExpirySecs: number;
  trackingHash: "public-xxh3-v1" | "keyed-xxh3-v1";
  /** 32-byte key file of `keyed-xxh3-v1`, shared by every replica. */
  trackingKeyFile: string | undefined;
  /** Names the key in use (so that replicas can tell they share it); informational. */
  trackingKeyId: string | undefined;
  queueThreshold: number | undefined;
  queuePolicy: "fcfs" | "wspt" | "lcfs";
  queueMaxDepth: number;
  queueTimeoutSecs: number;
  policyConfig: string | undefined;
  useRemoteIndexer: boolean;
  sharedCacheType: string;
  sharedCacheMultiplier: number | undefined;
  loadAware: boolean;
  sessionAffinityTtlSecs: number | undefined;
  enforceDisagg: boolean;
  /**
   * The frontend's spelling of the same choice (aggregated fallback when no prefill worker can take
   * the request). Used only when `enforceDisagg` is not given: `enforceDisagg = !decodeFallback`.
   */
  decodeFallback: boolean | undefined;
  busyThreshold: number;
  activeDecodeBlocksThreshold: number | undefined;
  activePrefillTokensThreshold: number | undefined;
  activePrefillTokensThresholdFrac: number | undefined;
  conditionalDisagg: boolean;
  minInitialWorkers: number;
  overlapRefreshAfterSecs: number;
  /** Adapters a worker holds at once (vLLM `--max-loras`): the most recently seen ones count as loaded. */
  loraMaxPerWorker: number;
  /** When no worker holds a request's adapter: route to one that must load it (else refuse). */
  loraAllowLoad: boolean;
  /** Cost added to a worker that must load the adapter, in prompt tokens of prefill work. */
  loraLoadPenaltyTokens: number;
}

type Key = keyof KvRouterSettings;
const s = setting<Key>;
const { nonNegative, positive, intAtLeast, fraction, oneOf, finite } = schemas;
const NON_NEG = ACCEPTED.nonNegative;
const POS = ACCEPTED.positive;
const BOOL = ACCEPTED.bool;

export const SETTINGS: readonly Setting<Key>[] = [
  s("mode", "DYN_ROUTER_MODE", "enum", oneOf(ROUTER_MODES), `one of ${ROUTER_MODES.join(", ")}`),
  s("blockSize", "DYN_KV_CACHE_BLOCK_SIZE", "int", intAtLeast(1), "an integer ≥ 1"),
  s("overlapScoreCredit", "DYN_ROUTER_KV_OVERLAP_SCORE_CREDIT", "number", nonNegative(), NON_NEG),
  s("overlapScoreCreditDecay", "DYN_ROUTER_KV_OVERLAP_SCORE_CREDIT_DECAY", "number", nonNegative(), NON_NEG),
  s("prefillLoadScale", "DYN_ROUTER_PREFILL_LOAD_SCALE", "number", nonNegative(), NON_NEG),
  s("decodeActiveRequestWeight", "DYN_ROUTER_DECODE_ACTIVE_REQUEST_WEIGHT", "number", nonNegative(), NON_NEG),
  s("hostCacheHitWeight", "DYN_ROUTER_HOST_CACHE_HIT_WEIGHT", "number", nonNegative(), NON_NEG),
  s("diskCacheHitWeight", "DYN_ROUTER_DISK_CACHE_HIT_WEIGHT", "number", nonNegative(), NON_NEG),
  s("temperature", "DYN_ROUTER_TEMPERATURE", "number", nonNegative(), NON_NEG),
  s(
    "overlapScoreWeight",
    ["DYN_ROUTER_KV_OVERLAP_SCORE_WEIGHT", "DYN_OVERLAP_SCORE_WEIGHT"],
    "number",
    nonNegative(),
    NON_NEG,
  ),
  s("useKvEvents", ["DYN_ROUTER_USE_KV_EVENTS", "DYN_USE_KV_EVENTS"], "bool", z.boolean(), BOOL),
  s("ttlSecs", "DYN_ROUTER_TTL_SECS", "number", positive(), POS),
  s("approximateCachePolicy", "DYN_ROUTER_APPROXIMATE_CACHE_POLICY", "enum", oneOf(["ttl", "lru"]), "ttl or lru"),
  s("predictedTtlSecs", "DYN_ROUTER_PREDICTED_TTL_SECS", "number", positive(), POS),
  s("maxApproxEntries", [], "int", intAtLeast(1), "an integer ≥ 1"),
  s("replicaSync", ["DYN_ROUTER_REPLICA_SYNC", "DYNAMO_ROUTER_REPLICA_SYNC"], "bool", z.boolean(), BOOL),
  s("replicaAuditEvery", "DYN_ROUTER_REPLICA_AUDIT_EVERY", "int", intAtLeast(0), "an integer ≥ 0"),
  s("replicaTieBand", "DYN_ROUTER_REPLICA_TIE_BAND", "number", nonNegative(), NON_NEG),
  s("trackActiveBlocks", "DYN_ROUTER_TRACK_ACTIVE_BLOCKS", "bool", z.boolean(), BOOL),
  s("trackOutputBlocks", "DYN_ROUTER_TRACK_OUTPUT_BLOCKS", "bool", z.boolean(), BOOL),
  s("assumeKvReuse", "DYN_ROUTER_ASSUME_KV_REUSE", "bool", z.boolean(), BOOL),
  s("trackPrefillTokens", "DYN_ROUTER_TRACK_PREFILL_TOKENS", "bool", z.boolean(), BOOL),
  s("prefillLoadModel", "DYN_ROUTER_PREFILL_LOAD_MODEL", "enum", oneOf(["none", "aic"]), "none or aic"),
  s("activeSequenceStride", "DYN_ROUTER_ACTIVE_SEQUENCE_STRIDE", "int", intAtLeast(1), "an integer ≥ 1"),
  s("activeRequestExpirySecs", "DYN_ROUTER_ACTIVE_REQUEST_EXPIRY_SECS", "number", positive(), POS),
  s(
    "trackingHash",
    "DYN_ROUTER_TRACKING_HASH",
    "enum",
    oneOf(["public-xxh3-v1", "keyed-xxh3-v1"]),
    "public-xxh3-v1 or keyed-xxh3-v1",
  ),
  s("trackingKeyFile", "DYN_ROUTER_TRACKING_KEY_FILE", "string", z.string().min(1), "a path to a 32-byte key file"),
  s("trackingKeyId", "DYN_ROUTER_TRACKING_KEY_ID", "string", z.string().min(1), "a key name"),
  s("queueThreshold", "DYN_ROUTER_QUEUE_THRESHOLD", "number", positive(), POS),
  s("queuePolicy", "DYN_ROUTER_QUEUE_POLICY", "enum", oneOf(["fcfs", "wspt", "lcfs"]), "fcfs, wspt or lcfs"),
  s("queueMaxDepth", "DYN_ROUTER_QUEUE_MAX_DEPTH", "int", intAtLeast(1), "an integer ≥ 1"),
  s("queueTimeoutSecs", "DYN_ROUTER_QUEUE_TIMEOUT_SECS", "number", positive(), POS),
  s("loraMaxPerWorker", "DYN_ROUTER_LORA_MAX_PER_WORKER", "int", intAtLeast(1), "an integer ≥ 1"),
  s("loraAllowLoad", "DYN_ROUTER_LORA_ALLOW_LOAD", "bool", z.boolean(), BOOL),
  s("loraLoadPenaltyTokens", "DYN_ROUTER_LORA_LOAD_PENALTY_TOKENS", "number", nonNegative(), "a number ≥ 0"),
  s("policyConfig", "DYN_ROUTER_POLICY_CONFIG", "string", z.string(), "a path"),
  s("useRemoteIndexer", "DYN_USE_REMOTE_INDEXER", "bool", z.boolean(), BOOL),
  s("sharedCacheType", "DYN_SHARED_CACHE_TYPE", "string", z.string(), "none"),
  s("sharedCacheMultiplier", "DYN_SHARED_CACHE_MULTIPLIER", "number", nonNegative(), NON_NEG),
  s("loadAware", "DYN_ROUTER_LOAD_AWARE", "bool", z.boolean(), BOOL),
  s("sessionAffinityTtlSecs", "DYN_ROUTER_SESSION_AFFINITY_TTL_SECS", "number", positive(), POS),
  s("enforceDisagg", "DYN_ENFORCE_DISAGG", "bool", z.boolean(), BOOL),
  s("decodeFallback", "DYN_DECODE_FALLBACK", "bool", z.boolean(), BOOL),
  s(
    "busyThreshold",
    "DYN_BUSY_THRESHOLD",
    "number",
    finite.refine((v) => v <= 1),
    "a number ≤ 1 (negative = off; 0–1 = KV fill fraction)",
  ),
  s("activeDecodeBlocksThreshold", "DYN_ACTIVE_DECODE_BLOCKS_THRESHOLD", "number", fraction(), "a fraction in [0, 1]"),
  s("activePrefillTokensThreshold", "DYN_ACTIVE_PREFILL_TOKENS_THRESHOLD", "number", nonNegative(), NON_NEG),
  s("activePrefillTokensThresholdFrac", "DYN_ACTIVE_PREFILL_TOKENS_THRESHOLD_FRAC", "number", nonNegative(), NON_NEG),
  s("conditionalDisagg", "DYN_ROUTER_CONDITIONAL_DISAGG", "bool", z.boolean(), BOOL),
  s("minInitialWorkers", "DYN_ROUTER_MIN_INITIAL_WORKERS", "int", intAtLeast(0), "an integer ≥ 0"),
  s("overlapRefreshAfterSecs", "DYN_ROUTER_OVERLAP_REFRESH_AFTER_SECS", "number", nonNegative(), NON_NEG),
];

export const DEFAULT_SETTINGS: Readonly<KvRouterSettings> = Object.freeze({
  mode: "kv",
  blockSize: 128,
  overlapScoreCredit: 1.0,
  overlapScoreCreditDecay: 0.0,
  prefillLoadScale: 1.0,
  decodeActiveRequestWeight: 0.0,
  hostCacheHitWeight: 0.75,
  diskCacheHitWeight: 0.25,
  temperature: 0.0,
  overlapScoreWeight: undefined,
  useKvEvents: true,
  ttlSecs: 120,
  approximateCachePolicy: "ttl",
  predictedTtlSecs: undefined,
  maxApproxEntries: 2 ** 20,
  replicaSync: false,
  replicaAuditEvery: 8,
  replicaTieBand: 0,
  trackActiveBlocks: true,
  trackOutputBlocks: false,
  assumeKvReuse: true,
  trackPrefillTokens: true,
  prefillLoadModel: "none",
  activeSequenceStride: 1,
  activeRequestExpirySecs: 300,
  trackingHash: "public-xxh3-v1",
  trackingKeyFile: undefined,
  trackingKeyId: undefined,
  queueThreshold: undefined,
  queuePolicy: "fcfs",
  queueMaxDepth: 1024,
  queueTimeoutSecs: 30,
  loraMaxPerWorker: 4,
  loraAllowLoad: true,
  loraLoadPenaltyTokens: 4096,
  policyConfig: undefined,
  useRemoteIndexer: false,
  sharedCacheType: "none",
  sharedCacheMultiplier: undefined,
  loadAware: false,
  sessionAffinityTtlSecs: undefined,
  enforceDisagg: false,
  decodeFallback: undefined,
  busyThreshold: -1,
  activeDecodeBlocksThreshold: undefined,
  activePrefillTokensThreshold: undefined,
  activePrefillTokensThresholdFrac: undefined,
  conditionalDisagg: false,
  minInitialWorkers: 0,
  overlapRefreshAfterSecs: 10,
});

/**
 * Reads every router setting present in `env`. Canonical names win over aliases; a bad value is reported
 * as `VARIABLE: expected <range>, got "<value>"`. Throws `RouterConfigError` listing all problems.
 */
export function settingsFromEnv(env: Environment): Partial<KvRouterSettings> {
  return readSettings(SETTINGS, env) as Partial<KvRouterSettings>;
}

/**
 * Validates an options object, fills defaults, applies the deprecated weight and the load-aware
 * preset, and rejects values this router does not run. `warn` receives deprecation notices.
 */
export function resolveSettings(
  options: Partial<KvRouterSettings>,
  warn: (message: string) => void = () => undefined,
): KvRouterSettings {
  const given = validateSettings(SETTINGS, options) as Partial<KvRouterSettings>;
  const settings: KvRouterSettings = { ...DEFAULT_SETTINGS, ...given };
  if (settings.decodeFallback !== undefined) {
    if (given.enforceDisagg === undefined) settings.enforceDisagg = !settings.decodeFallback;
    else if (settings.enforceDisagg === settings.decodeFallback) {
      warn(
        `DYN_DECODE_FALLBACK=${settings.decodeFallback} contradicts DYN_ENFORCE_DISAGG=${settings.enforceDisagg}; DYN_ENFORCE_DISAGG wins`,
      );
    }
  }
  const weight = settings.overlapScoreWeight;
  if (weight !== undefined) {
    warn(
      "overlap score weight (DYN_ROUTER_KV_OVERLAP_SCORE_WEIGHT / DYN_OVERLAP_SCORE_WEIGHT) is deprecated: it sets prefill_load_scale, and 0 also sets the overlap credit to 0",
    );
    settings.prefillLoadScale = weight;
    if (weight === 0) settings.overlapScoreCredit = 0;
  }
  if (settings.loadAware) {
    settings.overlapScoreCredit = 0;
    settings.useKvEvents = false;
    settings.assumeKvReuse = false;
    settings.trackActiveBlocks = true;
  }
  const problems = unsupported(settings);
  if (problems.length > 0) throw new RouterConfigError(problems);
  return settings;
}

function unsupported(st: KvRouterSettings): string[] {
  const out: string[] = [];
  if (st.predictedTtlSecs !== undefined && !st.useKvEvents) {
    out.push("DYN_ROUTER_PREDICTED_TTL_SECS: requires KV events; not combinable with DYN_ROUTER_USE_KV_EVENTS=false");
  }
  if (st.trackingHash === "keyed-xxh3-v1" && st.trackingKeyFile === undefined)
    out.push(
      "DYN_ROUTER_TRACKING_KEY_FILE: required with DYN_ROUTER_TRACKING_HASH=keyed-xxh3-v1 (a 32-byte key file shared by every replica)",
    );
  if (st.approximateCachePolicy !== "ttl")
    out.push("DYN_ROUTER_APPROXIMATE_CACHE_POLICY: only ttl is supported by this router");
  if (st.prefillLoadModel !== "none") out.push("DYN_ROUTER_PREFILL_LOAD_MODEL: only none is supported by this router");
  if (st.policyConfig !== undefined)
    out.push("DYN_ROUTER_POLICY_CONFIG: policy classes from YAML are not supported; leave it unset");
  if (st.useRemoteIndexer) out.push("DYN_USE_REMOTE_INDEXER: a remote indexer is not supported; expected false");
  if (st.sharedCacheType.toLowerCase() !== "none")
    out.push("DYN_SHARED_CACHE_TYPE: only none is supported by this router");
  if (st.conditionalDisagg)
    out.push("DYN_ROUTER_CONDITIONAL_DISAGG: conditional disaggregation is not supported; expected false");
  return out;
}
