// Every rendered object checked against the real schema of its kind, offline:
// - Kubernetes core types and the Gateway API: the `kubernetes-models` / `@kubernetes-models/*` validators
//   (types, required fields, enums, patterns, formats), plus, for core types, unknown fields from the
//   Kubernetes client's type catalogue (kubectl's strict field validation rejects them in a cluster);
// - Istio's DestinationRule: `@kubernetes-models/istio`, generated from Istio's CRDs;
// - InferencePool and AgentgatewayParameters: the vendored CRDs in test/crds (schema and CEL rules);
// - metadata of every object: ObjectMeta's fields, and the name, label and port-name rules the API
//   server applies on top of the schemas.
import * as client from "@kubernetes/client-node";
import { DestinationRule } from "@kubernetes-models/istio/networking.istio.io/v1beta1";
import { Gateway, HTTPRoute } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1";
import { Deployment } from "kubernetes-models/apps/v1";
import { Job } from "kubernetes-models/batch/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { Role, RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1";
import { ConfigMap, Namespace, PersistentVolumeClaim, Service, ServiceAccount } from "kubernetes-models/v1";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadCrdValidators, type CrdValidator } from "./crd.js";
import { containersOf, podTemplates, type K8sObject } from "./objects.js";

interface Validatable {
  validate(): void;
}
type ModelClass = new (data: never) => Validatable;

const CRD_DIR = fileURLToPath(new URL("../crds/", import.meta.url));

/** Kinds validated by a model class; `strict` names the client type whose fields are the only ones allowed. */
const MODELS: Record<string, { model: ModelClass; strict?: string }> = {
  "v1 ConfigMap": { model: ConfigMap, strict: "V1ConfigMap" },
  "v1 Namespace": { model: Namespace, strict: "V1Namespace" },
  "v1 PersistentVolumeClaim": { model: PersistentVolumeClaim, strict: "V1PersistentVolumeClaim" },
  "v1 Service": { model: Service, strict: "V1Service" },
  "v1 ServiceAccount": { model: ServiceAccount, strict: "V1ServiceAccount" },
  "apps/v1 Deployment": { model: Deployment, strict: "V1Deployment" },
  "batch/v1 Job": { model: Job, strict: "V1Job" },
  "policy/v1 PodDisruptionBudget": { model: PodDisruptionBudget, strict: "V1PodDisruptionBudget" },
  "rbac.authorization.k8s.io/v1 Role": { model: Role, strict: "V1Role" },
  "rbac.authorization.k8s.io/v1 RoleBinding": { model: RoleBinding, strict: "V1RoleBinding" },
  "gateway.networking.k8s.io/v1 Gateway": { model: Gateway },
  "gateway.networking.k8s.io/v1 HTTPRoute": { model: HTTPRoute },
  "networking.istio.io/v1beta1 DestinationRule": { model: DestinationRule },
};

const CRDS: Map<string, CrdValidator> = new Map(
  ["inference.networking.k8s.io_inferencepools.yaml", "agentgateway.dev_agentgatewayparameters.yaml"]
    .flatMap((file) => loadCrdValidators(join(CRD_DIR, file)))
    .map((validator) => [`${validator.apiVersion} ${validator.kind}`, validator]),
);

/** The `apiVersion kind` pairs this module can validate. */
export function knownKinds(): string[] {
  return [...Object.keys(MODELS), ...CRDS.keys()].sort();
}

type AttributeTypeMap = { baseName: string; type: string }[];
const typeCatalogue = client as unknown as Record<string, { getAttributeTypeMap?: () => AttributeTypeMap }>;

/** Fields of `value` that the Kubernetes type `type` (a client type name) does not declare. */
export function unknownFields(value: unknown, type: string, path: string): string[] {
  if (value === null || value === undefined) return [];
  const array = /^Array<(.+)>$/.exec(type);
  if (array)
    return Array.isArray(value) ? value.flatMap((item, i) => unknownFields(item, array[1]!, `${path}/${i}`)) : [];
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    return typeof value === "object"
      ? Object.entries(value).flatMap(([key, item]) => unknownFields(item, map[1]!, `${path}/${key}`))
      : [];
  }
  const attributes = typeCatalogue[type]?.getAttributeTypeMap?.();
  if (!attributes || typeof value !== "object" || Array.isArray(value)) return [];
  const declared = new Map(attributes.map((attribute) => [attribute.baseName, attribute.type]));
  return Object.entries(value).flatMap(([key, item]) => {
    const itemType = declared.get(key);
    return itemType === undefined
      ? [`${path}/${key}: unknown field (not in ${type})`]
      : unknownFields(item, itemType, `${path}/${key}`);
  });
}

const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^(?=.{1,63}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_1035_LABEL = /^(?=.{1,63}$)[a-z]([-a-z0-9]*[a-z0-9])?$/;
const IANA_SVC_NAME = /^(?=.{1,15}$)(?=.*[a-z])[a-z0-9]+(-[a-z0-9]+)*$/;
const LABEL_NAME = /^(?=.{1,63}$)[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(?=.{0,63}$)(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function labelKeyProblem(key: string): string | undefined {
  const slash = key.lastIndexOf("/");
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && !DNS_SUBDOMAIN.test(prefix)) return `label key ${key}: prefix is not a DNS subdomain`;
  if (!LABEL_NAME.test(name)) return `label key ${key}: name is not a valid label name`;
  return undefined;
}

function labelProblems(labels: Record<string, string> | undefined, path: string): string[] {
  return Object.entries(labels ?? {}).flatMap(([key, value]) => {
    const problems: string[] = [];
    const keyProblem = labelKeyProblem(key);
    if (keyProblem) problems.push(`${path}: ${keyProblem}`);
    if (typeof value !== "string" || !LABEL_VALUE.test(value))
      problems.push(`${path}: label ${key}=${value} is not a valid value`);
    return problems;
  });
}

/** The API server's validation beyond the schemas: names, label syntax, container and port names. */
function apiServerRules(object: K8sObject): string[] {
  const problems: string[] = [];
  const name = object.metadata?.name ?? "";
  const nameRule = object.kind === "Service" ? DNS_1035_LABEL : DNS_SUBDOMAIN;
  if (!nameRule.test(name)) problems.push(`/metadata/name: ${JSON.stringify(name)} is not a valid ${object.kind} name`);
  problems.push(...labelProblems(object.metadata?.labels, "/metadata/labels"));
  for (const pod of podTemplates([object])) {
    problems.push(...labelProblems(pod.labels, "/spec/template/metadata/labels"));
  }
  for (const ref of podTemplates([object]).flatMap((pod) => containersOf(pod, { init: true }))) {
    if (!DNS_LABEL.test(ref.container.name)) problems.push(`${ref.where}: container name is not a DNS label`);
    for (const port of ref.container.ports ?? []) {
      if (port.name !== undefined && !IANA_SVC_NAME.test(port.name)) {
        problems.push(`${ref.where}: port name ${port.name} is not an IANA service name (<= 15 chars, a-z0-9-)`);
      }
    }
  }
  if (object.kind === "Service") {
    for (const port of (object.spec as { ports?: { name?: string }[] }).ports ?? []) {
      if (port.name !== undefined && !DNS_LABEL.test(port.name))
        problems.push(`Service port name ${port.name} is not a DNS label`);
    }
  }
  return problems;
}

function modelProblems(model: ModelClass, object: K8sObject): string[] {
  try {
    new model(object as never).validate();
    return [];
  } catch (error) {
    const errors = (error as { errors?: { instancePath: string; message?: string }[] }).errors;
    if (!errors) return [String(error)];
    return errors.map((e) => `${e.instancePath || "/"}: ${e.message ?? "invalid"}`);
  }
}

/** Problems with one rendered object, prefixed with its kind and name; empty when it is valid. */
export function validateObject(object: K8sObject): string[] {
  const key = `${object.apiVersion} ${object.kind}`;
  const label = `${object.kind}/${object.metadata?.name ?? "<unnamed>"}`;
  const entry = MODELS[key];
  const crd = CRDS.get(key);
  let problems: string[];
  if (entry) {
    problems = modelProblems(entry.model, object);
    if (entry.strict) problems.push(...unknownFields(object, entry.strict, ""));
    else problems.push(...unknownFields(object.metadata, "V1ObjectMeta", "/metadata"));
  } else if (crd) {
    problems = [...crd.validate(object), ...unknownFields(object.metadata, "V1ObjectMeta", "/metadata")];
  } else {
    return [`${label}: no schema for ${key} (validated kinds: ${knownKinds().join(", ")})`];
  }
  problems.push(...apiServerRules(object));
  return problems.map((problem) => `${label} ${problem}`);
}
