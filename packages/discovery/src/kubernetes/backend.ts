import { CoreV1Api, CustomObjectsApi, KubeConfig, Watch } from "@kubernetes/client-node";
import { resolveNamespacePrefix } from "../namespace.js";
import { WorkerRegistryBase } from "../registry.js";
import type { WorkerInfo, WorkerRole } from "../worker.js";
import {
  DEFAULT_KV_EVENT_PORT,
  DEFAULT_ROLE_LABEL,
  DYNAMO_COMPONENT_CLASS_LABEL,
  DYNAMO_NAMESPACE_LABEL,
  labelSelectorOf,
  parseInferencePool,
  workersFromPod,
  type InferencePoolSpec,
  type PodMapping,
  type PodObject,
} from "./pods.js";
import { Reflector, type KubeObject, type ReflectorStats, type WatchEventType } from "./reflector.js";

export const INFERENCE_POOL_GROUP = "inference.networking.k8s.io";
export const INFERENCE_POOL_VERSION = "v1";
export const INFERENCE_POOL_PLURAL = "inferencepools";

/** Kubernetes discovery settings (see `kubernetesOptionsFromEnv` for the environment mapping). */
export interface KubernetesDiscoveryOptions {
  /** Cluster access. Default: in-cluster service account, else `~/.kube/config`. */
  kubeConfig?: KubeConfig;
  /** Kubernetes namespace whose pods are watched (`POD_NAMESPACE`). */
  namespace: string;
  /** Select pods by this InferencePool's selector and target ports; otherwise by Dynamo labels. */
  inferencePool?: string;
  /** Dynamo-label mode: namespace prefix (default `DYN_NAMESPACE_PREFIX` > `DYN_NAMESPACE` > `vllm-agg`). */
  namespacePrefix?: string;
  /** `pod` (default) or `container` (one worker per Ready container). */
  mode?: "pod" | "container";
  /** Same role for every worker (e.g. a prefill pool); otherwise from `roleLabel`. */
  role?: WorkerRole;
  /** Label with value `prefill` or `decode`. Default `nvidia.com/dynamo-sub-component-type`. */
  roleLabel?: string;
  /** KV-event PUB port of rank 0 (container port `kv-events` wins). Default 5557. */
  kvEventPort?: number;
  /** Replay ROUTER port of rank 0 (container port `kv-replay` wins). Default none. */
  kvEventReplayPort?: number;
  modelName?: string;
  blockSize?: number;
  totalKvBlocks?: number;
  /** Per-step token budget of every worker; `prefill…` / `decode…` win for workers of that role. */
  maxNumBatchedTokens?: number;
  prefillMaxNumBatchedTokens?: number;
  decodeMaxNumBatchedTokens?: number;
  /** Delay after a failed list/watch. Default 1000 ms. */
  retryMs?: number;
  /** Server-side watch timeout. Default 300 s. */
  watchTimeoutSeconds?: number;
}

/** Counters of the pod (and InferencePool) watches. */
export interface KubernetesWatchStats {
  pods: ReflectorStats;
  inferencePool?: ReflectorStats;
}

type PoolState = { kind: "unknown" } | { kind: "absent" } | { kind: "present"; spec: InferencePoolSpec };

/**
 * Workers from pods: selected by an InferencePool (its `spec.selector.matchLabels`, one DP rank per
 * `spec.targetPorts` entry) or by the Dynamo labels `nvidia.com/dynamo-component-class=worker` and
 * `nvidia.com/dynamo-namespace` starting with the namespace prefix. Only Ready, non-terminating pods
 * with an IP count. Pods are listed and watched with the Kubernetes client (watch restarts resume
 * from the last resourceVersion, `410 Gone` relists); editing the pool's selector restarts the pod
 * watch with the new selector and the worker list is re-diffed.
 */
export class KubernetesDiscovery extends WorkerRegistryBase {
  private readonly kubeConfig: KubeConfig;
  private readonly core: CoreV1Api;
  private readonly custom: CustomObjectsApi;
  private readonly watch: Watch;
  private readonly pods = new Map<string, PodObject>();
  private podReflector: Reflector<PodObject> | undefined;
  private poolReflector: Reflector<KubeObject> | undefined;
  private pool: PoolState = { kind: "unknown" };
  private podSelector: string | undefined;
  /** The pods of the current selector have been listed and are being followed (not stale). */
  private podsListed = false;
  /** The InferencePool has been listed and is being followed (not stale). */
  private poolListed = false;
  private readonly mode: "pod" | "container";

  constructor(private readonly options: KubernetesDiscoveryOptions) {
    super();
    this.kubeConfig = options.kubeConfig ?? defaultKubeConfig();
    this.core = this.kubeConfig.makeApiClient(CoreV1Api);
    this.custom = this.kubeConfig.makeApiClient(CustomObjectsApi);
    this.watch = new Watch(this.kubeConfig);
    this.mode = options.mode ?? "pod";
  }

  async start(): Promise<void> {
    if (this.options.inferencePool === undefined) {
      this.watchPods(`${DYNAMO_COMPONENT_CLASS_LABEL}=worker,${DYNAMO_NAMESPACE_LABEL}`);
      return;
    }
    const name = this.options.inferencePool;
    const { namespace } = this.options;
    this.poolReflector = new Reflector({
      what: `inferencepool/${name}`,
      watch: this.watch,
      path: `/apis/${INFERENCE_POOL_GROUP}/${INFERENCE_POOL_VERSION}/namespaces/${namespace}/${INFERENCE_POOL_PLURAL}`,
      fieldSelector: `metadata.name=${name}`,
      list: async () => {
        const list = (await this.custom.listNamespacedCustomObject({
          group: INFERENCE_POOL_GROUP,
          version: INFERENCE_POOL_VERSION,
          namespace,
          plural: INFERENCE_POOL_PLURAL,
          fieldSelector: `metadata.name=${name}`,
        })) as { items?: KubeObject[]; metadata?: { resourceVersion?: string } };
        return { items: list.items ?? [], resourceVersion: list.metadata?.resourceVersion ?? "" };
      },
      onList: (items) => {
        this.poolListed = true;
        this.onPool(items[0]);
      },
      onEvent: (type, object) => this.onPool(type === "DELETED" ? undefined : object),
      onProblem: (message, cause) => this.reportProblem({ source: `kubernetes:inferencepool/${name}`, message, cause }),
      onStale: () => {
        this.poolListed = false;
        this.markNotReady();
      },
      retryMs: this.options.retryMs ?? 1000,
      timeoutSeconds: this.options.watchTimeoutSeconds ?? 300,
    });
    this.poolReflector.start();
  }

  protected async stopBackend(): Promise<void> {
    await Promise.all([this.poolReflector?.stop(), this.podReflector?.stop()]);
    this.poolReflector = undefined;
    this.podReflector = undefined;
  }

  /** List/watch counters, for tests and diagnostics. */
  watchStats(): KubernetesWatchStats {
    const stats: KubernetesWatchStats = {
      pods: { ...(this.podReflector?.stats ?? { lists: 0, watches: 0, gone: 0 }) },
    };
    if (this.poolReflector) stats.inferencePool = { ...this.poolReflector.stats };
    return stats;
  }

  private onPool(object: unknown): void {
    const source = `kubernetes:inferencepool/${this.options.inferencePool}`;
    if (object === undefined) {
      this.pool = { kind: "absent" };
      this.reportProblem({ source, message: "InferencePool not found; no workers" });
      void this.stopPods();
      this.applyFullList([], source);
      return;
    }
    const spec = parseInferencePool(object);
    if ("error" in spec) {
      // A broken edit keeps the last good selector and ports in force.
      this.reportProblem({ source, message: `invalid InferencePool ignored: ${spec.error}` });
      this.publish(false);
      return;
    }
    this.pool = { kind: "present", spec };
    const selector = labelSelectorOf(spec.matchLabels);
    if (selector !== this.podSelector) this.watchPods(selector);
    else this.publish(false);
  }

  private watchPods(selector: string): void {
    const previous = this.podReflector;
    this.podSelector = selector;
    this.podsListed = false;
    const { namespace } = this.options;
    const reflector = new Reflector<PodObject>({
      what: "pods",
      watch: this.watch,
      path: `/api/v1/namespaces/${namespace}/pods`,
      labelSelector: selector,
      list: async () => {
        const list = await this.core.listNamespacedPod({ namespace, labelSelector: selector });
        return { items: list.items, resourceVersion: list.metadata?.resourceVersion ?? "" };
      },
      onList: (items) => {
        if (this.podReflector !== reflector) return;
        this.pods.clear();
        for (const pod of items) if (pod.metadata?.name) this.pods.set(pod.metadata.name, pod);
        this.podsListed = true;
        this.publish(true);
      },
      onEvent: (type, pod) => {
        if (this.podReflector === reflector) this.onPodEvent(type, pod);
      },
      onProblem: (message, cause) => this.reportProblem({ source: "kubernetes:pods", message, cause }),
      onStale: () => {
        if (this.podReflector !== reflector) return;
        this.podsListed = false;
        this.markNotReady();
      },
      retryMs: this.options.retryMs ?? 1000,
      timeoutSeconds: this.options.watchTimeoutSeconds ?? 300,
    });
    this.podReflector = reflector;
    // The old pods stay in force until the new selector's list replaces them.
    void previous?.stop();
    reflector.start();
  }

  private async stopPods(): Promise<void> {
    const reflector = this.podReflector;
    this.podReflector = undefined;
    this.podSelector = undefined;
    this.pods.clear();
    await reflector?.stop();
  }

  private onPodEvent(type: WatchEventType, pod: PodObject): void {
    const name = pod.metadata?.name;
    if (!name) return;
    if (type === "DELETED") this.pods.delete(name);
    else this.pods.set(name, pod);
    if (this.podsListed) this.publish(false);
  }

  /**
   * Recomputes the worker list from the known pods; `fullList` after a (re)list of the pods. Stale pods
   * publish nothing; with a stale pool the pod changes still apply (under the last good pool), but
   * readiness returns only once both have been listed afresh.
   */
  private publish(fullList: boolean): void {
    if (!this.podsListed) return;
    if (this.options.inferencePool !== undefined && this.pool.kind !== "present") return;
    const mapping = this.mapping();
    const workers: WorkerInfo[] = [];
    for (const pod of this.pods.values()) {
      const result = workersFromPod(pod, mapping);
      if (Array.isArray(result)) workers.push(...result);
    }
    const inSync = this.options.inferencePool === undefined || this.poolListed;
    if ((fullList || !this.ready) && inSync) this.applyFullList(workers, "kubernetes:pods");
    else this.reconcile(workers, "kubernetes:pods");
  }

  private mapping(): PodMapping {
    const o = this.options;
    const mapping: PodMapping = {
      mode: this.mode,
      roleLabel: o.roleLabel ?? DEFAULT_ROLE_LABEL,
      kvEventPort: o.kvEventPort ?? DEFAULT_KV_EVENT_PORT,
    };
    if (this.pool.kind === "present") mapping.targetPorts = this.pool.spec.targetPorts;
    else mapping.namespacePrefix = o.namespacePrefix ?? resolveNamespacePrefix();
    if (o.role !== undefined) mapping.role = o.role;
    if (o.kvEventReplayPort !== undefined) mapping.kvEventReplayPort = o.kvEventReplayPort;
    if (o.modelName !== undefined) mapping.modelName = o.modelName;
    if (o.blockSize !== undefined) mapping.blockSize = o.blockSize;
    if (o.totalKvBlocks !== undefined) mapping.totalKvBlocks = o.totalKvBlocks;
    if (o.maxNumBatchedTokens !== undefined) mapping.maxNumBatchedTokens = o.maxNumBatchedTokens;
    if (o.prefillMaxNumBatchedTokens !== undefined) mapping.prefillMaxNumBatchedTokens = o.prefillMaxNumBatchedTokens;
    if (o.decodeMaxNumBatchedTokens !== undefined) mapping.decodeMaxNumBatchedTokens = o.decodeMaxNumBatchedTokens;
    return mapping;
  }
}

function defaultKubeConfig(): KubeConfig {
  const config = new KubeConfig();
  config.loadFromDefault();
  return config;
}
