import {
  DiscoveryConfigError,
  kubernetesOptionsFromEnv,
  staticOptionsFromEnv,
  type KubernetesDiscoveryOptions,
} from "@dynamo/discovery";
import {
  RouterConfigError,
  readSettings,
  resolveSettings,
  settingsFromEnv,
  type Environment,
  type KvRouterSettings,
} from "@dynamo/kv-router";
import { serviceSettingsFromEnv, type ServiceSettings } from "@dynamo/router-service";
import { DEFAULT_EPP_SETTINGS, EPP_SETTINGS, type EppSettings } from "./environment.js";

/** A configuration the endpoint picker cannot start with; `problems` names each variable. */
export class EppConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid endpoint picker configuration:\n  ${problems.join("\n  ")}`);
    this.name = "EppConfigError";
  }
}

/** Where workers come from. */
export type WorkerSource =
  /** The router service builds the registry `DYN_DISCOVERY_BACKEND` names (static, NATS, Kubernetes by labels or one pool). */
  | { readonly kind: "service" }
  /** Two InferencePools: the decode (or aggregated) pool and a pool of prefill workers. */
  | {
      readonly kind: "pools";
      readonly decode: KubernetesDiscoveryOptions;
      readonly prefill: KubernetesDiscoveryOptions;
    };

/** Everything the endpoint picker runs with, parsed from the environment. */
export interface EppConfig {
  readonly epp: EppSettings;
  /** Router settings present in the environment (defaults apply to the rest). */
  readonly router: Partial<KvRouterSettings>;
  /** Router-service settings present in the environment, the discovery backend resolved. */
  readonly service: Partial<ServiceSettings>;
  readonly workers: WorkerSource;
  /** The environment it was read from (discovery backends read their own variables from it). */
  readonly env: Environment;
  /** Settings accepted for compatibility that change nothing here, with the reason (logged at start). */
  readonly notes: readonly string[];
}

function attempt<T>(problems: string[], read: () => T): T | undefined {
  try {
    return read();
  } catch (error) {
    if (error instanceof RouterConfigError) problems.push(...error.problems);
    else if (error instanceof DiscoveryConfigError) problems.push(error.message);
    else throw error;
    return undefined;
  }
}

/**
 * Reads and checks the whole configuration (epp-protocol §11): the EPP's own settings, every router and
 * router-service setting, and the discovery backend's variables. Values are trimmed, empty means unset;
 * every bad value is reported at once in an `EppConfigError` naming its variable.
 */
export function eppConfigFromEnv(env: Environment = process.env): EppConfig {
  const problems: string[] = [];
  const notes: string[] = [];
  const given = attempt(problems, () => readSettings(EPP_SETTINGS, env)) ?? {};
  const epp: EppSettings = { ...DEFAULT_EPP_SETTINGS, ...(given as Partial<EppSettings>) };
  const router = attempt(problems, () => settingsFromEnv(env)) ?? {};
  attempt(problems, () => resolveSettings(router));
  const service = attempt(problems, () => serviceSettingsFromEnv(env)) ?? {};
  // The EPP discovers workers in Kubernetes unless told otherwise (the service alone defaults to none).
  const backend = service.discovery ?? "kubernetes";
  const resolved: Partial<ServiceSettings> = { ...service, discovery: backend };

  if (epp.mode === "standalone") {
    if (epp.inferencePoolName === undefined)
      problems.push("DYN_EPP_INFERENCE_POOL_NAME is required with DYN_EPP_MODE=standalone");
    if (epp.modelName === undefined) problems.push("DYN_MODEL_NAME is required with DYN_EPP_MODE=standalone");
    if (env["DYN_KUBE_DISCOVERY_MODE"]?.trim() === "container")
      problems.push("DYN_KUBE_DISCOVERY_MODE=container is not supported with DYN_EPP_MODE=standalone (use pod)");
  }
  if (epp.prefillInferencePoolName !== undefined && epp.inferencePoolName === undefined)
    problems.push("DYN_EPP_PREFILL_INFERENCE_POOL_NAME needs DYN_EPP_INFERENCE_POOL_NAME (the decode pool)");
  if (epp.prefillInferencePoolName !== undefined && epp.topologyMode === "disaggregated") {
    problems.push(
      "DYN_EPP_TOPOLOGY_MODE=disaggregated (one pool, roles from DYN_EPP_WORKER_ROLE_LABEL) and DYN_EPP_PREFILL_INFERENCE_POOL_NAME (a second pool) are alternatives: set one",
    );
  }
  if (epp.prefillInferencePoolName !== undefined && backend !== "kubernetes")
    problems.push("DYN_EPP_PREFILL_INFERENCE_POOL_NAME needs Kubernetes discovery (DYN_DISCOVERY_BACKEND=kubernetes)");
  if (epp.peerService !== undefined && epp.podIp === undefined)
    problems.push("DYN_EPP_PEER_SERVICE needs POD_IP (the downward API's status.podIP) to tell itself from its peers");
  if (epp.probePort !== 0 && epp.probePort === epp.extProcPort)
    problems.push("DYN_EPP_PROBE_PORT must differ from the ext_proc port");

  let workers: WorkerSource = { kind: "service" };
  if (backend === "kubernetes") {
    if (env["POD_NAMESPACE"]?.trim() === undefined || env["POD_NAMESPACE"]?.trim() === "") {
      problems.push(
        "POD_NAMESPACE is required for Kubernetes discovery (the downward API's metadata.namespace); or set DYN_DISCOVERY_BACKEND=static or nats",
      );
    } else {
      const decode = attempt(problems, () => kubernetesOptionsFromEnv(env as NodeJS.ProcessEnv));
      if (decode !== undefined && epp.prefillInferencePoolName !== undefined) {
        workers = {
          kind: "pools",
          decode,
          prefill: { ...decode, inferencePool: epp.prefillInferencePoolName, role: "prefill" },
        };
      }
    }
  }
  if (backend === "static") attempt(problems, () => staticOptionsFromEnv(env as NodeJS.ProcessEnv));
  if (epp.peerService !== undefined) {
    notes.push(
      "DYN_EPP_PEER_SERVICE is not used: replicas share bookings over NATS with DYN_ROUTER_REPLICA_SYNC=true (NATS_SERVER names the server)",
    );
  }
  if (given.selectionIndexerThreads !== undefined) {
    notes.push(
      "DYN_EPP_SELECTION_INDEXER_THREADS has no effect: the index is updated and read on the event loop (an event or a lookup costs microseconds)",
    );
  }
  if (problems.length > 0) throw new EppConfigError(problems);
  return { epp, router, service: resolved, workers, env, notes };
}
