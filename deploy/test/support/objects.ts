// Reading rendered manifests the way the kubelet and the controllers will: which pods a workload
// creates, what environment each container ends up with, what its arguments expand to, which pods a
// selector picks. Pure functions over the objects `kubectl kustomize` printed.
import type { IContainer, IEnvVar, IPodTemplateSpec, IProbe } from "kubernetes-models/v1";

/** One rendered Kubernetes object. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/** A pod template and the workload that owns it. */
export interface PodTemplate {
  owner: K8sObject;
  template: IPodTemplateSpec;
  labels: Record<string, string>;
}

/** A container of a pod template. */
export interface ContainerRef {
  pod: PodTemplate;
  container: IContainer;
  /** `Deployment/dynamo-epp container epp`, for messages. */
  where: string;
}

/** An environment variable as the container will see it. `value` is undefined when only the cluster knows it. */
export interface EnvValue {
  value: string | undefined;
  /** `literal`, `configmap <name>/<key>`, `secret <name>/<key>`, `field <path>`, ... */
  source: string;
}

export type ResolvedEnv = Map<string, EnvValue>;

const WORKLOAD_KINDS = new Set(["Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"]);

export function describe(object: K8sObject): string {
  return `${object.kind}/${object.metadata.name}`;
}

export function ofKind(objects: readonly K8sObject[], kind: string): K8sObject[] {
  return objects.filter((object) => object.kind === kind);
}

export function find(objects: readonly K8sObject[], kind: string, name: string): K8sObject | undefined {
  return objects.find((object) => object.kind === kind && object.metadata.name === name);
}

export function spec<T>(object: K8sObject): T {
  return object.spec as T;
}

export function podTemplates(objects: readonly K8sObject[]): PodTemplate[] {
  return objects
    .filter((object) => WORKLOAD_KINDS.has(object.kind))
    .map((owner) => {
      const template = spec<{ template: IPodTemplateSpec }>(owner).template;
      return { owner, template, labels: template.metadata?.labels ?? {} };
    });
}

export function containersOf(pod: PodTemplate, options: { init?: boolean } = {}): ContainerRef[] {
  const podSpec = pod.template.spec;
  const list = [...(podSpec?.containers ?? []), ...(options.init ? (podSpec?.initContainers ?? []) : [])];
  return list.map((container) => ({ pod, container, where: `${describe(pod.owner)} container ${container.name}` }));
}

export function allContainers(objects: readonly K8sObject[], options: { init?: boolean } = {}): ContainerRef[] {
  return podTemplates(objects).flatMap((pod) => containersOf(pod, options));
}

/** Whether a matchLabels-style selector picks a pod with these labels (an empty selector picks nothing). */
export function selects(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  const entries = Object.entries(selector ?? {});
  return entries.length > 0 && entries.every(([key, value]) => labels[key] === value);
}

function configMapData(objects: readonly K8sObject[], name: string): Record<string, string> | undefined {
  const configMap = find(objects, "ConfigMap", name);
  return configMap ? ((configMap.data as Record<string, string> | undefined) ?? {}) : undefined;
}

/** `metadata.labels['key']` (or annotations) read from the pod template; undefined for runtime fields. */
function fieldValue(pod: PodTemplate, fieldPath: string): string | undefined {
  const match = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(fieldPath);
  if (!match) return undefined;
  const map = match[1] === "labels" ? pod.template.metadata?.labels : pod.template.metadata?.annotations;
  return map?.[match[2]!] ?? "";
}

/**
 * The container's environment as the kubelet builds it: `envFrom` first, then `env` in order, with
 * `$(VAR)` references in values expanded against the variables defined before them. ConfigMaps are
 * looked up among `objects`; a missing ConfigMap or key that is not optional is reported in `problems`.
 */
export function resolveEnv(ref: ContainerRef, objects: readonly K8sObject[], problems: string[] = []): ResolvedEnv {
  const env: ResolvedEnv = new Map();
  for (const source of ref.container.envFrom ?? []) {
    const name = source.configMapRef?.name;
    if (name === undefined) continue;
    const data = configMapData(objects, name);
    if (data === undefined) {
      if (!source.configMapRef?.optional) problems.push(`${ref.where}: envFrom ConfigMap ${name} is not rendered`);
      continue;
    }
    for (const [key, value] of Object.entries(data)) {
      env.set(`${source.prefix ?? ""}${key}`, { value, source: `configmap ${name}/${key}` });
    }
  }
  for (const variable of ref.container.env ?? [])
    env.set(variable.name, resolveVariable(ref, variable, env, objects, problems));
  return env;
}

function resolveVariable(
  ref: ContainerRef,
  variable: IEnvVar,
  env: ResolvedEnv,
  objects: readonly K8sObject[],
  problems: string[],
): EnvValue {
  const from = variable.valueFrom;
  if (from?.configMapKeyRef) {
    const { name = "", key, optional } = from.configMapKeyRef;
    const value = configMapData(objects, name)?.[key];
    if (value === undefined && !optional) {
      problems.push(`${ref.where}: ${variable.name} reads ConfigMap ${name} key ${key}, which is not rendered`);
    }
    return { value, source: `configmap ${name}/${key}` };
  }
  if (from?.secretKeyRef)
    return { value: undefined, source: `secret ${from.secretKeyRef.name}/${from.secretKeyRef.key}` };
  if (from?.fieldRef) {
    return { value: fieldValue(ref.pod, from.fieldRef.fieldPath), source: `field ${from.fieldRef.fieldPath}` };
  }
  if (from) return { value: undefined, source: "resource" };
  return { value: expand(variable.value ?? "", env, ref, problems), source: "literal" };
}

/**
 * `$(VAR)` expansion as Kubernetes does it for env values, command and args: a defined variable is
 * replaced (by `<source>` when only the cluster knows its value), `$$` is a literal `$`, and a
 * reference to an undefined variable stays as written (reported, since it is always a mistake here).
 */
export function expand(text: string, env: ResolvedEnv, ref?: ContainerRef, problems?: string[]): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (whole, name: string | undefined) => {
    if (name === undefined) return "$";
    const variable = env.get(name);
    if (variable === undefined) {
      problems?.push(`${ref?.where ?? "container"}: $(${name}) is not defined in the container's environment`);
      return whole;
    }
    return variable.value ?? `<${variable.source}>`;
  });
}

/** The container's command and args after expansion. */
export function expandedArgs(ref: ContainerRef, env: ResolvedEnv, problems?: string[]): string[] {
  return [...(ref.container.command ?? []), ...(ref.container.args ?? [])].map((arg) =>
    expand(arg, env, ref, problems),
  );
}

/** Values of a command-line flag, written `--flag=value` or `--flag value`. */
export function flagValues(args: readonly string[], flag: string): string[] {
  const values: string[] = [];
  args.forEach((arg, index) => {
    if (arg.startsWith(`${flag}=`)) values.push(arg.slice(flag.length + 1));
    else if (arg === flag && index + 1 < args.length && !args[index + 1]!.startsWith("--"))
      values.push(args[index + 1]!);
  });
  return values;
}

export function hasFlag(args: readonly string[], flag: string): boolean {
  return args.some((arg) => arg === flag || arg.startsWith(`${flag}=`));
}

/** The container port a probe or Service target names (by number or by name). */
export function containerPort(container: IContainer, port: number | string): number | undefined {
  const ports = container.ports ?? [];
  const found =
    typeof port === "number" ? ports.find((p) => p.containerPort === port) : ports.find((p) => p.name === port);
  return found?.containerPort;
}

export function portNamed(container: IContainer, name: string): number | undefined {
  return container.ports?.find((port) => port.name === name)?.containerPort;
}

/** The port a probe targets, whatever its kind. */
export function probePort(probe: IProbe): number | string | undefined {
  return probe.httpGet?.port ?? probe.grpc?.port ?? probe.tcpSocket?.port;
}
