import { describe, expect, it } from "vitest";
import {
  DiscoveryConfigError,
  KubernetesDiscovery,
  NatsDiscovery,
  StaticDiscovery,
  discoveryFromEnv,
  kubernetesOptionsFromEnv,
  natsOptionsFromEnv,
  resolveNamespacePrefix,
  staticOptionsFromEnv,
} from "../src/index.js";

describe("configuration from the environment", () => {
  it("resolves the namespace prefix: DYN_NAMESPACE_PREFIX > DYN_NAMESPACE > vllm-agg, empty meaning unset", () => {
    expect(resolveNamespacePrefix({})).toBe("vllm-agg");
    expect(resolveNamespacePrefix({ DYN_NAMESPACE: " team-a " })).toBe("team-a");
    expect(resolveNamespacePrefix({ DYN_NAMESPACE: "team-a", DYN_NAMESPACE_PREFIX: "team-b" })).toBe("team-b");
    expect(resolveNamespacePrefix({ DYN_NAMESPACE: "team-a", DYN_NAMESPACE_PREFIX: "  " })).toBe("team-a");
  });

  it("reads the Kubernetes options and rejects bad values naming the variable", () => {
    expect(
      kubernetesOptionsFromEnv({
        POD_NAMESPACE: "serving",
        DYN_NAMESPACE: "vllm-disagg",
        DYN_KUBE_DISCOVERY_MODE: "container",
        DYN_EPP_INFERENCE_POOL_NAME: "pool",
        DYN_EPP_WORKER_ROLE_LABEL: "role",
        DYN_MODEL_NAME: "m",
        DYN_KV_CACHE_BLOCK_SIZE: "16",
        DYN_EPP_KV_EVENT_PORT: "6000",
        DYN_EPP_KV_EVENT_REPLAY_PORT: "6100",
        DYN_EPP_TOTAL_KV_BLOCKS: "2048",
        DYN_EPP_MAX_NUM_BATCHED_TOKENS: "8192",
        DYN_EPP_PREFILL_MAX_NUM_BATCHED_TOKENS: "16384",
      }),
    ).toEqual({
      namespace: "serving",
      namespacePrefix: "vllm-disagg",
      mode: "container",
      inferencePool: "pool",
      roleLabel: "role",
      modelName: "m",
      blockSize: 16,
      kvEventPort: 6000,
      kvEventReplayPort: 6100,
      totalKvBlocks: 2048,
      maxNumBatchedTokens: 8192,
      prefillMaxNumBatchedTokens: 16384,
    });
    expect(() => kubernetesOptionsFromEnv({})).toThrow(/POD_NAMESPACE is required/);
    expect(() => kubernetesOptionsFromEnv({ POD_NAMESPACE: "x", DYN_KUBE_DISCOVERY_MODE: "node" })).toThrow(
      /DYN_KUBE_DISCOVERY_MODE="node" must be one of pod, container/,
    );
    expect(() => kubernetesOptionsFromEnv({ POD_NAMESPACE: "x", DYN_KV_CACHE_BLOCK_SIZE: "16k" })).toThrow(
      DiscoveryConfigError,
    );
  });

  it("reads the NATS and static options", () => {
    expect(natsOptionsFromEnv({})).toEqual({ servers: ["nats://localhost:4222"], namespacePrefix: "vllm-agg" });
    expect(natsOptionsFromEnv({ NATS_SERVER: "nats://a:4222, nats://b:4222", DYN_COMPONENT_NAME: "backend" })).toEqual({
      servers: ["nats://a:4222", "nats://b:4222"],
      namespacePrefix: "vllm-agg",
      component: "backend",
    });
    expect(staticOptionsFromEnv({ DYN_DISCOVERY_FILE: "/etc/workers.yaml" })).toEqual({ file: "/etc/workers.yaml" });
    expect(staticOptionsFromEnv({ DYN_DISCOVERY_WORKERS: "[]" })).toEqual({
      text: "[]",
      sourceName: "DYN_DISCOVERY_WORKERS",
    });
    expect(() => staticOptionsFromEnv({})).toThrow(/DYN_DISCOVERY_FILE or DYN_DISCOVERY_WORKERS/);
  });

  it("builds the backend DYN_DISCOVERY_BACKEND names", () => {
    expect(discoveryFromEnv({ DYN_DISCOVERY_BACKEND: "static", DYN_DISCOVERY_WORKERS: "[]" })).toBeInstanceOf(
      StaticDiscovery,
    );
    expect(discoveryFromEnv({ DYN_DISCOVERY_BACKEND: "nats" })).toBeInstanceOf(NatsDiscovery);
    expect(() => discoveryFromEnv({ DYN_DISCOVERY_BACKEND: "etcd" })).toThrow(
      /must be one of static, nats, kubernetes/,
    );
    expect(() => discoveryFromEnv({})).toThrow(/POD_NAMESPACE/);
    expect(discoveryFromEnv({ POD_NAMESPACE: "serving" })).toBeInstanceOf(KubernetesDiscovery);
  });
});
