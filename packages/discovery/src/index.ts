export {
  OPTIONAL_MODEL_CARD_FILES,
  REQUIRED_MODEL_CARD_FILES,
  WORKER_ROLES,
  sameWorker,
  type KvCapacityHints,
  type KvEventEndpoints,
  type ModelCard,
  type ModelCardFileSource,
  type WorkerChange,
  type WorkerInfo,
  type WorkerRole,
} from "./worker.js";
export { containerWorkerId, formatWorkerId, parseWorkerId, podWorkerId, workerIdFromName } from "./worker-id.js";
export {
  WorkerRegistryBase,
  describeProblem,
  type DiscoveryProblem,
  type DiscoveryStats,
  type WorkerRegistry,
} from "./registry.js";
export {
  offsetTcpPort,
  workerFromSpec,
  workerSpecSchema,
  workerToSpec,
  type WorkerSpec,
  type WorkerSpecContext,
} from "./worker-spec.js";
export { DEFAULT_DYNAMO_NAMESPACE, envValue, namespaceMatches, resolveNamespacePrefix } from "./namespace.js";
export {
  fetchModelCard,
  readLocalModelCardFiles,
  type ModelCardFetchOptions,
  type ModelCardFiles,
} from "./model-card.js";
export { parseWorkerDocument, type WorkerDocumentResult } from "./static/parse.js";
export { StaticDiscovery, type StaticDiscoveryOptions } from "./static/backend.js";
export { DEFAULT_INSTANCE_BUCKET, DEFAULT_MODEL_CARD_BUCKET, instanceKey, parseInstanceKey } from "./nats/names.js";
export { decodeRegistration, encodeRegistration, type Registration } from "./nats/record.js";
export { NatsModelCardStore, objectDigest } from "./nats/model-card-store.js";
export { NatsWorkerRegistrar, type NatsRegistrarOptions } from "./nats/registrar.js";
export { NatsDiscovery, type NatsDiscoveryOptions } from "./nats/discovery.js";
export {
  KubernetesDiscovery,
  INFERENCE_POOL_GROUP,
  INFERENCE_POOL_PLURAL,
  INFERENCE_POOL_VERSION,
  type KubernetesDiscoveryOptions,
  type KubernetesWatchStats,
} from "./kubernetes/backend.js";
export {
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
  type PodSkipReason,
} from "./kubernetes/pods.js";
export type { ReflectorStats } from "./kubernetes/reflector.js";
export {
  DEFAULT_NATS_SERVER,
  DISCOVERY_BACKENDS,
  DiscoveryConfigError,
  kubernetesOptionsFromEnv,
  natsOptionsFromEnv,
  staticOptionsFromEnv,
  type DiscoveryBackendName,
} from "./env.js";
export { discoveryFromEnv } from "./from-env.js";
