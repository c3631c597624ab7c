// Consistency checks that hold for any rendered set of manifests: what a cluster would only reveal at run
// time (a probe on a port nobody listens on, a ConfigMap key that does not exist, an unpinned image).
// Each check returns its problems; an empty list means the set passes.
import {
  allContainers,
  containerPort,
  describe,
  expandedArgs,
  find,
  ofKind,
  podTemplates,
  probePort,
  resolveEnv,
  selects,
  spec,
  type K8sObject,
} from "./objects.js";

export type Check = (objects: readonly K8sObject[]) => string[];

/** Images built from this repository; they are released together under one tag. */
export const PROJECT_IMAGE_PREFIX = "dynamo-gaie/";

/** No object sets a namespace: `kubectl apply -k <dir> -n <namespace>` decides it. */
export const noNamespaces: Check = (objects) =>
  objects
    .filter((object) => object.metadata.namespace !== undefined)
    .map((object) => `${describe(object)} sets namespace ${object.metadata.namespace}`);

function imageTag(image: string): string | undefined {
  if (image.includes("@sha256:")) return image.split("@")[1];
  const lastSegment = image.slice(image.lastIndexOf("/") + 1);
  return lastSegment.includes(":") ? lastSegment.slice(lastSegment.indexOf(":") + 1) : undefined;
}

/** Every image has a version tag (or a digest), never `latest`; the project's images share one tag. */
export const imagesPinned: Check = (objects) => {
  const problems: string[] = [];
  const projectTags = new Set<string>();
  for (const ref of allContainers(objects, { init: true })) {
    const image = ref.container.image ?? "";
    const tag = imageTag(image);
    if (tag === undefined || tag === "latest")
      problems.push(`${ref.where}: image ${image || "<none>"} is not pinned to a tag`);
    if (image.startsWith(PROJECT_IMAGE_PREFIX) && tag !== undefined) projectTags.add(tag);
  }
  if (projectTags.size > 1) problems.push(`the project's images use different tags: ${[...projectTags].join(", ")}`);
  return problems;
};

/** Every container requests CPU and memory and caps its memory. */
export const resourcesSet: Check = (objects) =>
  allContainers(objects, { init: true }).flatMap((ref) => {
    const { requests = {}, limits = {} } = ref.container.resources ?? {};
    const missing = [
      requests.cpu === undefined && "requests.cpu",
      requests.memory === undefined && "requests.memory",
      limits.memory === undefined && "limits.memory",
    ].filter(Boolean);
    return missing.length > 0 ? [`${ref.where}: no ${missing.join(", ")}`] : [];
  });

/** Every probe targets a port its container declares; every long-running container has a readiness probe. */
export const probesTargetDeclaredPorts: Check = (objects) =>
  allContainers(objects).flatMap((ref) => {
    const problems: string[] = [];
    const probes = {
      startupProbe: ref.container.startupProbe,
      readinessProbe: ref.container.readinessProbe,
      livenessProbe: ref.container.livenessProbe,
    };
    for (const [kind, probe] of Object.entries(probes)) {
      if (!probe) continue;
      const port = probePort(probe);
      if (port === undefined) problems.push(`${ref.where}: ${kind} has no port`);
      else if (containerPort(ref.container, port) === undefined) {
        problems.push(`${ref.where}: ${kind} targets port ${port}, which the container does not declare`);
      }
    }
    if (ref.pod.owner.kind === "Deployment" && !ref.container.readinessProbe)
      problems.push(`${ref.where}: no readinessProbe`);
    return problems;
  });

/**
 * Everything a pod refers to exists: ConfigMaps and keys of its environment, the variables its arguments
 * expand, the volumes its containers mount, its ServiceAccount, and the PersistentVolumeClaims it
 * mounts (rendered here, or among `externalClaims`, which another kustomization creates).
 */
export function referencesResolve(externalClaims: readonly string[] = []): Check {
  return (objects) => {
    const problems: string[] = [];
    for (const ref of allContainers(objects, { init: true })) {
      const env = resolveEnv(ref, objects, problems);
      expandedArgs(ref, env, problems);
      const volumes = new Set((ref.pod.template.spec?.volumes ?? []).map((volume) => volume.name));
      for (const mount of ref.container.volumeMounts ?? []) {
        if (!volumes.has(mount.name))
          problems.push(`${ref.where}: mounts volume ${mount.name}, which the pod does not define`);
      }
    }
    for (const pod of podTemplates(objects)) {
      const account = pod.template.spec?.serviceAccountName;
      if (account !== undefined && !find(objects, "ServiceAccount", account)) {
        problems.push(`${describe(pod.owner)}: ServiceAccount ${account} is not rendered`);
      }
      for (const volume of pod.template.spec?.volumes ?? []) {
        const claim = volume.persistentVolumeClaim?.claimName;
        if (claim !== undefined && !find(objects, "PersistentVolumeClaim", claim) && !externalClaims.includes(claim)) {
          problems.push(`${describe(pod.owner)}: PersistentVolumeClaim ${claim} is not rendered`);
        }
      }
    }
    return problems;
  };
}

/** Every Service selects at least one pod, and its target ports exist on the selected pods. */
export const servicesSelectPods: Check = (objects) =>
  ofKind(objects, "Service").flatMap((service) => {
    const { selector, ports = [] } = spec<{
      selector?: Record<string, string>;
      ports?: { port: number; targetPort?: number | string }[];
    }>(service);
    const pods = podTemplates(objects).filter((pod) => selects(selector, pod.labels));
    if (pods.length === 0) return [`${describe(service)} selects no pod`];
    return ports.flatMap((port) => {
      const target = port.targetPort ?? port.port;
      const missing = pods.filter(
        (pod) =>
          !(pod.template.spec?.containers ?? []).some((container) => containerPort(container, target) !== undefined),
      );
      return missing.map(
        (pod) => `${describe(service)} port ${port.port} targets ${target}, not declared by ${describe(pod.owner)}`,
      );
    });
  });

/** The checks every rendered set must pass. */
export function workloadChecks(externalClaims: readonly string[] = []): Record<string, Check> {
  return {
    noNamespaces,
    imagesPinned,
    resourcesSet,
    probesTargetDeclaredPorts,
    referencesResolve: referencesResolve(externalClaims),
    servicesSelectPods,
  };
}
