import { describe, expect, it } from "vitest";
import {
  DEFAULT_EPP_SETTINGS,
  EPP_ENVIRONMENT,
  EPP_VARIABLE_NAMES,
  EppConfigError,
  eppConfigFromEnv,
  replicaLease,
} from "../src/index.js";

/** Every variable of epp-protocol §11 (the Dynamo EPP's environment). */
const REFERENCE_VARIABLES = [
  "DYN_EPP_MODE",
  "DYN_NAMESPACE_PREFIX",
  "DYN_NAMESPACE",
  "DYN_COMPONENT_NAME",
  "DYN_KUBE_DISCOVERY_MODE",
  "POD_NAMESPACE",
  "DYN_ENFORCE_DISAGG",
  "DYN_SECURE_SERVING",
  "DYN_EPP_METRICS_PORT",
  "DYN_EPP_GRACEFUL_SHUTDOWN_PROPAGATION_SECS",
  "DYN_KV_CACHE_BLOCK_SIZE",
  "DYN_USE_KV_EVENTS",
  "DYN_ROUTER_USE_KV_EVENTS",
  "DYN_BUSY_THRESHOLD",
  "DYN_ACTIVE_DECODE_BLOCKS_THRESHOLD",
  "DYN_ACTIVE_PREFILL_TOKENS_THRESHOLD",
  "DYN_ACTIVE_PREFILL_TOKENS_THRESHOLD_FRAC",
  "DYN_METADATA_HEADER",
  "DYN_EPP_SHED_RETRY_AFTER_SECS",
  "DYN_EPP_MAX_INFLIGHT_REQUESTS",
  "DYN_EPP_INFERENCE_POOL_NAME",
  "DYN_EPP_PREFILL_INFERENCE_POOL_NAME",
  "DYN_EPP_TOPOLOGY_MODE",
  "DYN_EPP_WORKER_ROLE_LABEL",
  "DYN_MODEL_NAME",
  "DYN_EPP_KV_EVENT_PORT",
  "DYN_EPP_KV_EVENT_REPLAY_PORT",
  "DYN_EPP_SELECTION_INDEXER_THREADS",
  "DYN_EPP_TOTAL_KV_BLOCKS",
  "DYN_EPP_MAX_NUM_BATCHED_TOKENS",
  "DYN_EPP_PREFILL_MAX_NUM_BATCHED_TOKENS",
  "DYN_EPP_DECODE_MAX_NUM_BATCHED_TOKENS",
  "DYN_EPP_TOKENIZER_SERVICE_URL",
  "DYN_EPP_TOKENIZER_PROTOCOL",
  "DYN_EPP_TOKENIZATION_TIMEOUT_MS",
  "DYN_EPP_TOKENIZER_MAX_RESPONSE_BYTES",
  "DYN_EPP_PEER_SERVICE",
  "POD_IP",
  "DYN_EPP_REPLICA_SYNC_PORT",
  "DYN_EPP_PROBE_PORT",
  "DYN_EPP_PROBE_TIMEOUT_MS",
  "DYN_EPP_PROBE_MAX_INFLIGHT",
];

const KUBE = { POD_NAMESPACE: "serving" };

describe("configuration from the environment", () => {
  it("lists every variable it reads, with its default and whether it is required", () => {
    for (const name of REFERENCE_VARIABLES) expect(EPP_VARIABLE_NAMES, name).toContain(name);
    const byName = new Map(EPP_ENVIRONMENT.map((v) => [v.name, v]));
    expect(byName.get("DYN_SECURE_SERVING")).toMatchObject({ default: "true", required: false, readBy: "epp" });
    expect(byName.get("DYN_EPP_MAX_INFLIGHT_REQUESTS")).toMatchObject({ default: "1024" });
    expect(byName.get("DYN_EPP_GRACEFUL_SHUTDOWN_PROPAGATION_SECS")).toMatchObject({ default: "5" });
    expect(byName.get("DYN_KV_CACHE_BLOCK_SIZE")).toMatchObject({ default: "128", readBy: "router" });
    expect(byName.get("DYN_USE_KV_EVENTS")).toMatchObject({ aliasOf: "DYN_ROUTER_USE_KV_EVENTS" });
    expect(byName.get("DYN_DISCOVERY_BACKEND")).toMatchObject({ default: "kubernetes", readBy: "router-service" });
    expect(byName.get("POD_NAMESPACE")).toMatchObject({ required: true, readBy: "discovery" });
    expect(byName.get("DYN_EPP_INFERENCE_POOL_NAME")).toMatchObject({
      required: true,
      requiredWhen: "DYN_EPP_MODE=standalone",
    });
    expect(new Set(EPP_ENVIRONMENT.map((v) => v.name)).size).toBe(EPP_ENVIRONMENT.length);
  });

  it("takes the defaults of epp-protocol §11 with only POD_NAMESPACE set", () => {
    const config = eppConfigFromEnv(KUBE);
    expect(config.epp).toEqual(DEFAULT_EPP_SETTINGS);
    expect(config.epp).toMatchObject({
      mode: "dynamo",
      secureServing: true,
      extProcPort: 9002,
      healthPort: 9003,
      metricsPort: 9090,
      probePort: 0,
      shutdownPropagationSecs: 5,
      maxInflightRequests: 1024,
      shedRetryAfterSecs: 1,
      metadataHeader: "x-dynamo-meta-",
      conformanceHooks: false,
    });
    expect(config.service.discovery).toBe("kubernetes");
    expect(config.workers).toEqual({ kind: "service" });
  });

  it("reads every setting, trimmed, empty meaning unset", () => {
    const config = eppConfigFromEnv({
      ...KUBE,
      DYN_EPP_MODE: " standalone ",
      DYN_SECURE_SERVING: "false",
      DYN_EPP_METRICS_PORT: "0",
      DYN_EPP_PROBE_PORT: "9100",
      DYN_EPP_MAX_INFLIGHT_REQUESTS: "64",
      DYN_EPP_INFERENCE_POOL_NAME: "decode-pool",
      DYN_EPP_PREFILL_INFERENCE_POOL_NAME: "prefill-pool",
      DYN_MODEL_NAME: "Qwen/Qwen3-0.6B",
      DYN_KV_CACHE_BLOCK_SIZE: "64",
      DYN_ENFORCE_DISAGG: "true",
      DYN_EPP_MAX_NUM_BATCHED_TOKENS: "8192",
      DYN_EPP_TOKENIZER_SERVICE_URL: "http://renderer:8000",
      DYN_EPP_PEER_SERVICE: "epp-peers",
      POD_IP: "10.1.2.3",
      DYN_METADATA_HEADER: "",
      DYN_EPP_SELECTION_INDEXER_THREADS: "8",
    });
    expect(config.epp).toMatchObject({
      mode: "standalone",
      secureServing: false,
      metricsPort: 0,
      probePort: 9100,
      maxInflightRequests: 64,
      modelName: "Qwen/Qwen3-0.6B",
      tokenizerServiceUrl: "http://renderer:8000",
      metadataHeader: "x-dynamo-meta-",
    });
    expect(config.router).toMatchObject({ blockSize: 64, enforceDisagg: true });
    expect(config.workers).toMatchObject({
      kind: "pools",
      decode: { inferencePool: "decode-pool", maxNumBatchedTokens: 8192, namespace: "serving" },
      prefill: { inferencePool: "prefill-pool", role: "prefill", maxNumBatchedTokens: 8192 },
    });
    expect(config.notes).toEqual([
      expect.stringMatching(
        /DYN_EPP_PEER_SERVICE is not used: replicas share bookings over NATS with DYN_ROUTER_REPLICA_SYNC=true/,
      ),
      expect.stringMatching(/DYN_EPP_SELECTION_INDEXER_THREADS has no effect/),
    ]);
  });

  it("reads the replicas' lease; the heartbeat is a tenth of it, at most a second", () => {
    expect(eppConfigFromEnv(KUBE).epp.replicaLeaseSecs).toBe(10);
    expect(EPP_ENVIRONMENT.find((v) => v.name === "DYN_ROUTER_REPLICA_LEASE_SECS")).toMatchObject({
      default: "10",
      readBy: "epp",
    });
    const lease = eppConfigFromEnv({ ...KUBE, DYN_ROUTER_REPLICA_LEASE_SECS: "1.5" }).epp.replicaLeaseSecs;
    expect(lease).toBe(1.5);
    expect(replicaLease(lease)).toEqual({ leaseMs: 1500, heartbeatMs: 150 });
    expect(replicaLease(10)).toEqual({ leaseMs: 10_000, heartbeatMs: 1000 });
    expect(replicaLease(60)).toEqual({ leaseMs: 60_000, heartbeatMs: 1000 });
    expect(replicaLease(0.1)).toEqual({ leaseMs: 100, heartbeatMs: 10 });
    for (const bad of ["0", "0.05", "-1", "ten", "7200"])
      expect(() => eppConfigFromEnv({ ...KUBE, DYN_ROUTER_REPLICA_LEASE_SECS: bad })).toThrow(
        /DYN_ROUTER_REPLICA_LEASE_SECS: expected seconds from 0.1 to 3600, got/,
      );
  });

  it("reads the event-loop delay sampler's interval: 10 ms unless set, a whole number of milliseconds ≥ 1", () => {
    expect(eppConfigFromEnv(KUBE).epp.eventLoopResolutionMs).toBe(10);
    expect(EPP_ENVIRONMENT.find((v) => v.name === "DYN_EPP_EVENT_LOOP_RESOLUTION_MS")).toMatchObject({
      default: "10",
      readBy: "epp",
    });
    expect(eppConfigFromEnv({ ...KUBE, DYN_EPP_EVENT_LOOP_RESOLUTION_MS: "1" }).epp.eventLoopResolutionMs).toBe(1);
    for (const bad of ["0", "2.5", "often"])
      expect(() => eppConfigFromEnv({ ...KUBE, DYN_EPP_EVENT_LOOP_RESOLUTION_MS: bad })).toThrow(
        /DYN_EPP_EVENT_LOOP_RESOLUTION_MS/,
      );
  });

  it("supports container discovery mode in Dynamo mode", () => {
    const config = eppConfigFromEnv({
      ...KUBE,
      DYN_KUBE_DISCOVERY_MODE: "container",
      DYN_EPP_INFERENCE_POOL_NAME: "pool",
      DYN_EPP_PREFILL_INFERENCE_POOL_NAME: "prefill",
    });
    expect(config.workers).toMatchObject({ decode: { mode: "container" }, prefill: { mode: "container" } });
  });

  it("reports every bad value at once, naming its variable", () => {
    let error: EppConfigError | undefined;
    try {
      eppConfigFromEnv({
        DYN_EPP_MODE: "sidecar",
        DYN_SECURE_SERVING: "perhaps",
        DYN_EPP_METRICS_PORT: "70000",
        DYN_KV_CACHE_BLOCK_SIZE: "0",
        DYN_KUBE_DISCOVERY_MODE: "node",
        DYN_ROUTER_QUEUE_THRESHOLD: "4",
      });
    } catch (e) {
      error = e as EppConfigError;
    }
    expect(error).toBeInstanceOf(EppConfigError);
    const text = error!.problems.join("\n");
    for (const name of [
      "DYN_EPP_MODE",
      "DYN_SECURE_SERVING",
      "DYN_EPP_METRICS_PORT",
      "DYN_KV_CACHE_BLOCK_SIZE",
      "POD_NAMESPACE is required",
    ])
      expect(text).toContain(name);
  });

  it("refuses combinations that cannot run", () => {
    const problems = (env: Record<string, string>) => {
      try {
        eppConfigFromEnv(env);
        return [];
      } catch (error) {
        return (error as EppConfigError).problems;
      }
    };
    expect(problems({ ...KUBE, DYN_EPP_MODE: "standalone" })).toEqual([
      expect.stringMatching(/DYN_EPP_INFERENCE_POOL_NAME is required/),
      expect.stringMatching(/DYN_MODEL_NAME is required/),
    ]);
    expect(
      problems({
        ...KUBE,
        DYN_EPP_MODE: "standalone",
        DYN_EPP_INFERENCE_POOL_NAME: "p",
        DYN_MODEL_NAME: "m",
        DYN_KUBE_DISCOVERY_MODE: "container",
      }),
    ).toEqual([expect.stringMatching(/container is not supported with DYN_EPP_MODE=standalone/)]);
    expect(problems({ ...KUBE, DYN_EPP_PREFILL_INFERENCE_POOL_NAME: "p" })).toEqual([
      expect.stringMatching(/needs DYN_EPP_INFERENCE_POOL_NAME/),
    ]);
    expect(problems({ ...KUBE, DYN_EPP_PEER_SERVICE: "peers" })).toEqual([expect.stringMatching(/needs POD_IP/)]);
    expect(problems({ DYN_DISCOVERY_BACKEND: "static" })).toEqual([
      expect.stringMatching(/DYN_DISCOVERY_FILE or DYN_DISCOVERY_WORKERS/),
    ]);
    expect(problems({ DYN_DISCOVERY_BACKEND: "static", DYN_DISCOVERY_WORKERS: "[]" })).toEqual([]);
  });
});
