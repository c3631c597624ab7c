// Consistency checks of a model deployment (EPP, InferencePool, HTTPRoute, workers): the invariants the
// router depends on and a cluster would only reveal as wrong routing or failed requests.
import {
  DEFAULT_KV_EVENT_PORT,
  DEFAULT_ROLE_LABEL,
  DiscoveryConfigError,
  kubernetesOptionsFromEnv,
  parseInferencePool,
  workersFromPod,
  type KubernetesDiscoveryOptions,
  type PodMapping,
} from "@dynamo/discovery";
import { EPP_VARIABLE_NAMES, EppConfigError, eppConfigFromEnv } from "@dynamo/epp";
import type { Check } from "./checks-workloads.js";
import {
  describe,
  find,
  flagValues,
  ofKind,
  podTemplates,
  portNamed,
  selects,
  spec,
  type K8sObject,
  type ResolvedEnv,
} from "./objects.js";
import {
  MODE_LABEL,
  TopologyError,
  epp,
  inferencePool,
  workerPods,
  workers,
  type Epp,
  type Worker,
} from "./serving.js";

/** Ports of the EPP (epp-protocol §9): ext_proc over TLS, gRPC health, Prometheus metrics. */
export const EPP_PORTS = { extProc: 9002, health: 9003, metrics: 9090 } as const;

/** Runs a check that needs the topology; a topology that cannot be read is itself the problem. */
function withTopology(check: (objects: readonly K8sObject[]) => string[]): Check {
  return (objects) => {
    try {
      return check(objects);
    } catch (error) {
      if (error instanceof TopologyError) return [error.message];
      throw error;
    }
  };
}

function envValue(env: ResolvedEnv, name: string): string | undefined {
  return env.get(name)?.value;
}

/** The pool selects every worker pod and nothing else. */
export const poolSelectsExactlyWorkers = withTopology((objects) => {
  const { pool, spec: poolSpec } = inferencePool(objects);
  const workerOwners = new Set(workerPods(objects).map((pod) => pod.owner));
  if (workerOwners.size === 0) return [`${describe(pool)}: no worker pods (no container port named http)`];
  return podTemplates(objects).flatMap((pod) => {
    const selected = selects(poolSpec.selector.matchLabels, pod.labels);
    const worker = workerOwners.has(pod.owner);
    if (selected && !worker) return [`${describe(pool)} selects ${describe(pod.owner)}, which is not a worker`];
    if (!selected && worker) return [`${describe(pool)} does not select worker ${describe(pod.owner)}`];
    return [];
  });
});

/** The pool's target port is the frontend sidecar's `http` port on every worker. */
export const poolTargetsSidecar = withTopology((objects) => {
  const { pool, spec: poolSpec } = inferencePool(objects);
  const ports = poolSpec.targetPorts.map((port) => port.number);
  if (ports.length !== 1) return [`${describe(pool)}: expected one target port, found ${ports.join(", ")}`];
  return workers(objects)
    .filter((worker) => portNamed(worker.sidecar.container, "http") !== ports[0])
    .map(
      (worker) =>
        `${describe(pool)} targets port ${ports[0]}, but ${worker.sidecar.where} serves http on ${portNamed(worker.sidecar.container, "http")}`,
    );
});

/** The endpoint picker is the EPP Service's ext_proc port, reaching the EPP container's ext_proc port. */
export const poolPicksEpp = withTopology((objects) => {
  const { pool, spec: poolSpec } = inferencePool(objects);
  const ref = poolSpec.endpointPickerRef;
  const problems: string[] = [];
  if ((ref.kind ?? "Service") !== "Service" || (ref.group ?? "") !== "")
    problems.push(`${describe(pool)}: endpointPickerRef is not a core Service`);
  if (ref.port?.number !== EPP_PORTS.extProc)
    problems.push(`${describe(pool)}: endpointPickerRef port is ${ref.port?.number}, not ${EPP_PORTS.extProc}`);
  if (ref.failureMode === undefined)
    problems.push(`${describe(pool)}: failureMode is left to the CRD default, which changed between releases`);
  const { container, service } = epp(objects);
  const declared = (container.container.ports ?? []).map((port) => port.containerPort);
  const exposed = spec<{ ports: { port: number }[] }>(service).ports.map((port) => port.port);
  for (const port of Object.values(EPP_PORTS)) {
    if (!declared.includes(port)) problems.push(`${container.where} does not declare port ${port}`);
    if (!exposed.includes(port)) problems.push(`${describe(service)} does not expose port ${port}`);
  }
  return problems;
});

/** Every HTTPRoute sends to the pool, from the Gateway `inference-gateway`. */
export const routeTargetsPool = withTopology((objects) => {
  const { pool } = inferencePool(objects);
  const routes = ofKind(objects, "HTTPRoute");
  if (routes.length === 0) return ["no HTTPRoute"];
  return routes.flatMap((route) => {
    const routeSpec = spec<{
      parentRefs: { kind?: string; name: string }[];
      rules: { backendRefs?: { group?: string; kind?: string; name: string }[] }[];
    }>(route);
    const problems = routeSpec.parentRefs
      .filter((parent) => (parent.kind ?? "Gateway") !== "Gateway" || parent.name !== "inference-gateway")
      .map(
        (parent) =>
          `${describe(route)}: parent ${parent.kind ?? "Gateway"}/${parent.name} is not the Gateway inference-gateway`,
      );
    for (const backend of routeSpec.rules.flatMap((rule) => rule.backendRefs ?? [])) {
      if (
        backend.kind !== "InferencePool" ||
        backend.group !== "inference.networking.k8s.io" ||
        backend.name !== pool.metadata.name
      ) {
        problems.push(
          `${describe(route)}: backend ${backend.group ?? ""}/${backend.kind ?? "Service"}/${backend.name} is not ${describe(pool)}`,
        );
      }
    }
    return problems;
  });
});

/** Health on the gRPC health port; the startup probe allows 10 s × 180 (model loads) before a restart. */
export const eppProbes = withTopology((objects) => {
  const { container } = epp(objects);
  const { startupProbe, readinessProbe, livenessProbe } = container.container;
  const problems: string[] = [];
  for (const [name, probe] of Object.entries({ startupProbe, readinessProbe, livenessProbe })) {
    if (probe?.grpc?.port !== EPP_PORTS.health)
      problems.push(`${container.where}: ${name} is not a gRPC health probe on ${EPP_PORTS.health}`);
  }
  if (startupProbe && ((startupProbe.periodSeconds ?? 10) !== 10 || (startupProbe.failureThreshold ?? 3) < 180)) {
    problems.push(
      `${container.where}: startupProbe allows ${startupProbe.periodSeconds} s × ${startupProbe.failureThreshold}, not 10 s × 180`,
    );
  }
  return problems;
});

/** The EPP's ServiceAccount may read pods (and the pool) in its namespace, and nothing more. */
export const eppRbac = withTopology((objects) => {
  const { container, env } = epp(objects);
  const account = container.pod.template.spec?.serviceAccountName ?? "default";
  const problems: string[] = [];
  if (ofKind(objects, "ClusterRoleBinding").length > 0)
    problems.push("a ClusterRoleBinding is rendered; the EPP needs none");
  const rules = ofKind(objects, "RoleBinding")
    .filter((binding) =>
      (binding.subjects as { kind: string; name: string }[]).some(
        (s) => s.kind === "ServiceAccount" && s.name === account,
      ),
    )
    .flatMap((binding) => {
      const roleRef = binding.roleRef as { kind: string; name: string };
      const role = find(objects, roleRef.kind, roleRef.name);
      if (!role) problems.push(`${describe(binding)} refers to ${roleRef.kind}/${roleRef.name}, which is not rendered`);
      return (role?.rules as { apiGroups: string[]; resources: string[]; verbs: string[] }[] | undefined) ?? [];
    });
  const grants = (group: string, resource: string, verb: string) =>
    rules.some(
      (rule) => rule.apiGroups.includes(group) && rule.resources.includes(resource) && rule.verbs.includes(verb),
    );
  const needed: [string, string][] = [["", "pods"]];
  if (envValue(env, "DYN_EPP_INFERENCE_POOL_NAME") !== undefined)
    needed.push(["inference.networking.k8s.io", "inferencepools"]);
  for (const [group, resource] of needed) {
    for (const verb of ["get", "list", "watch"]) {
      if (!grants(group, resource, verb)) problems.push(`ServiceAccount ${account} may not ${verb} ${resource}`);
    }
  }
  const extra = rules.flatMap((rule) => rule.verbs.filter((verb) => !["get", "list", "watch"].includes(verb)));
  if (extra.length > 0) problems.push(`ServiceAccount ${account} is granted ${extra.join(", ")}; discovery only reads`);
  return problems;
});

/** The EPP hashes prompts in blocks of DYN_KV_CACHE_BLOCK_SIZE tokens: every engine must use the same size. */
export const blockSizeAgrees = withTopology((objects) => {
  const size = envValue(epp(objects).env, "DYN_KV_CACHE_BLOCK_SIZE");
  if (size === undefined || !/^[1-9]\d*$/.test(size))
    return [`the EPP's DYN_KV_CACHE_BLOCK_SIZE is ${size ?? "unset"}`];
  return workers(objects)
    .filter((worker) => worker.facts.blockSize !== size)
    .map(
      (worker) =>
        `${worker.engine.where}: --block-size ${worker.facts.blockSize ?? "unset"} ≠ the EPP's DYN_KV_CACHE_BLOCK_SIZE ${size}`,
    );
});

/** Engines serve the model the EPP routes for, loaded from where the EPP reads the tokenizer. */
export const modelAgrees = withTopology((objects) => {
  const eppInfo = epp(objects);
  const name = envValue(eppInfo.env, "DYN_MODEL_NAME");
  const path = envValue(eppInfo.env, "DYN_MODEL_PATH");
  const problems: string[] = [];
  for (const worker of workers(objects)) {
    if (worker.facts.servedModel !== name)
      problems.push(`${worker.engine.where} serves ${worker.facts.servedModel}, the EPP routes ${name}`);
    if (path !== undefined && worker.facts.engine === "vllm" && worker.facts.modelPath !== path) {
      problems.push(`${worker.engine.where} loads ${worker.facts.modelPath}, the EPP reads the tokenizer from ${path}`);
    }
  }
  if (path === undefined) {
    if (!/^Qwen\/Qwen3-/.test(name ?? ""))
      problems.push(`the EPP has no DYN_MODEL_PATH for ${name} (its embedded tokenizer is Qwen3's)`);
    return problems;
  }
  const claimAt = (ref: Epp["container"]) => {
    const mount = (ref.container.volumeMounts ?? []).find(
      (m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`),
    );
    const volume = ref.pod.template.spec?.volumes?.find((v) => v.name === mount?.name);
    return mount && volume?.persistentVolumeClaim
      ? `${volume.persistentVolumeClaim.claimName} at ${mount.mountPath}`
      : undefined;
  };
  const eppClaim = claimAt(eppInfo.container);
  if (eppClaim === undefined) problems.push(`${eppInfo.container.where} mounts no volume claim holding ${path}`);
  for (const worker of workers(objects).filter((w) => w.facts.engine === "vllm")) {
    const claim = claimAt(worker.engine);
    if (claim !== eppClaim)
      problems.push(
        `${worker.engine.where} mounts ${claim ?? "nothing"} for ${path}, the EPP ${eppClaim ?? "nothing"}`,
      );
  }
  return problems;
});

/** Engines publish KV events where the EPP dials them: the `kv-events` port, bound, with prefix caching on. */
export const kvEventsAgree = withTopology((objects) => {
  const env = epp(objects).env;
  const eppPort = Number(envValue(env, "DYN_EPP_KV_EVENT_PORT") ?? DEFAULT_KV_EVENT_PORT);
  const eppReplay = envValue(env, "DYN_EPP_KV_EVENT_REPLAY_PORT");
  return workers(objects).flatMap(({ engine, facts }) => {
    const problems: string[] = [];
    if (!facts.prefixCaching)
      problems.push(`${engine.where}: prefix caching is off (no KV events, no cache to route to)`);
    if (!facts.kvEventsEnabled) problems.push(`${engine.where}: KV events are not published over ZeroMQ`);
    if (!facts.kvEventsBound)
      problems.push(`${engine.where}: the KV-event socket connects out instead of binding for the EPP`);
    if (facts.kvEventsPort !== portNamed(engine.container, "kv-events")) {
      problems.push(
        `${engine.where}: publishes on ${facts.kvEventsPort}, its kv-events port is ${portNamed(engine.container, "kv-events")}`,
      );
    }
    if (facts.kvEventsPort !== eppPort)
      problems.push(`${engine.where}: publishes on ${facts.kvEventsPort}, the EPP dials ${eppPort}`);
    if (facts.kvReplayPort !== portNamed(engine.container, "kv-replay")) {
      problems.push(
        `${engine.where}: replays on ${facts.kvReplayPort}, its kv-replay port is ${portNamed(engine.container, "kv-replay")}`,
      );
    }
    if (eppReplay !== undefined && facts.kvReplayPort !== Number(eppReplay)) {
      problems.push(`${engine.where}: replays on ${facts.kvReplayPort}, the EPP asks ${eppReplay}`);
    }
    return problems;
  });
});

function roleProblems(worker: Worker, disaggregated: boolean): string[] {
  const { engine, facts, pod, role } = worker;
  const problems: string[] = [];
  const mode = pod.labels[MODE_LABEL];
  if (mode !== role) problems.push(`${describe(pod.owner)}: ${MODE_LABEL}=${mode} but the EPP sees role ${role}`);
  if (facts.engine === "mocker" && facts.disaggregationMode !== role) {
    problems.push(`${engine.where}: --disaggregation-mode ${facts.disaggregationMode} on a ${role} worker`);
  }
  if (facts.engine === "vllm" && disaggregated !== (facts.kvConnector === "NixlConnector")) {
    problems.push(
      `${engine.where}: KV connector ${facts.kvConnector ?? "none"} in a${disaggregated ? " disaggregated" : "n aggregated"} deployment`,
    );
  }
  return problems;
}

/** Aggregated or disaggregated throughout: roles, DYN_ENFORCE_DISAGG in the EPP and sidecars, engine modes. */
export const rolesAgree = withTopology((objects) => {
  const all = workers(objects);
  const roles = new Set(all.map((worker) => worker.role));
  const disaggregated = roles.has("prefill") || roles.has("decode");
  const problems: string[] = [];
  if (disaggregated && !(roles.has("prefill") && roles.has("decode") && roles.size === 2)) {
    problems.push(`disaggregated workers need exactly the roles prefill and decode, found ${[...roles].join(", ")}`);
  }
  const enforce = envValue(epp(objects).env, "DYN_ENFORCE_DISAGG") ?? "false";
  if (enforce !== String(disaggregated))
    problems.push(`DYN_ENFORCE_DISAGG=${enforce} for ${disaggregated ? "dis" : ""}aggregated workers`);
  for (const worker of all) {
    problems.push(...roleProblems(worker, disaggregated));
    const sidecarEnforce = envValue(worker.sidecarEnv, "DYN_ENFORCE_DISAGG");
    if (sidecarEnforce !== enforce)
      problems.push(`${worker.sidecar.where}: DYN_ENFORCE_DISAGG=${sidecarEnforce}, the EPP has ${enforce}`);
  }
  return problems;
});

/** A vLLM engine gets one GPU per tensor-parallel rank. */
export const gpusMatchParallelism = withTopology((objects) =>
  workers(objects)
    .filter((worker) => worker.facts.engine === "vllm")
    .flatMap(({ engine }) => {
      const args = engine.container.args ?? [];
      const parallel = Number(flagValues(args, "--tensor-parallel-size")[0] ?? 1);
      const gpus = engine.container.resources?.limits?.["nvidia.com/gpu"];
      return Number(gpus) === parallel
        ? []
        : [`${engine.where}: ${gpus ?? "no"} GPUs for tensor parallelism ${parallel}`];
    }),
);

/** A check over the EPP container's resolved environment. */
export type EppEnvCheck = (env: ResolvedEnv, objects: readonly K8sObject[]) => string[];

const POD_NAMESPACE_SENTINEL = "<the pod's namespace>";

/** The EPP's discovery options, parsed from its environment by the discovery package itself. */
function discoveryOptions(env: ResolvedEnv): KubernetesDiscoveryOptions | string {
  const values = Object.fromEntries(
    [...env].map(([name, variable]) => [name, variable.value ?? `<${variable.source}>`]),
  );
  values.POD_NAMESPACE = POD_NAMESPACE_SENTINEL;
  try {
    return kubernetesOptionsFromEnv(values);
  } catch (error) {
    if (error instanceof DiscoveryConfigError) return `discovery rejects the EPP's environment: ${error.message}`;
    throw error;
  }
}

/**
 * The EPP's worker discovery reads its configuration from this environment exactly as it will in the
 * cluster, and what it reads matches the rendered topology.
 */
export const discoveryConfigAgrees: EppEnvCheck = (env, objects) => {
  const problems: string[] = [];
  if (env.get("POD_NAMESPACE")?.source !== "field metadata.namespace")
    problems.push("POD_NAMESPACE does not come from metadata.namespace");
  const options = discoveryOptions(env);
  if (typeof options === "string") return [...problems, options];
  const { pool } = inferencePool(objects);
  if (options.namespace !== POD_NAMESPACE_SENTINEL)
    problems.push(`discovery watches ${options.namespace}, not the EPP's namespace`);
  if (options.inferencePool !== pool.metadata.name)
    problems.push(`discovery reads pool ${options.inferencePool}, the route sends to ${pool.metadata.name}`);
  if (options.mode !== "pod")
    problems.push(`discovery mode ${options.mode}: the frontend sidecar would count as a worker of its own`);
  return problems;
};

/**
 * What the EPP's discovery makes of every worker pod once it runs and is Ready (the discovery package's
 * own pod mapping, with the pool's target ports): one worker per pod, in the pod's role, reached on the
 * sidecar's `http` port, with KV events and replay on the engine's ports, in the engine's block size.
 */
export const discoverySeesWorkers: EppEnvCheck = (env, objects) => {
  const options = discoveryOptions(env);
  if (typeof options === "string") return [options];
  const pool = parseInferencePool(inferencePool(objects).pool);
  if ("error" in pool) return [`discovery rejects the InferencePool: ${pool.error}`];
  const mapping: PodMapping = {
    mode: options.mode ?? "pod",
    targetPorts: pool.targetPorts,
    roleLabel: options.roleLabel ?? DEFAULT_ROLE_LABEL,
    kvEventPort: options.kvEventPort ?? DEFAULT_KV_EVENT_PORT,
  };
  if (options.kvEventReplayPort !== undefined) mapping.kvEventReplayPort = options.kvEventReplayPort;
  if (options.blockSize !== undefined) mapping.blockSize = options.blockSize;
  return workers(objects).flatMap((worker, index) => {
    const ip = `10.0.0.${index + 1}`;
    const name = `${worker.pod.owner.metadata.name}-0`;
    const pod = {
      metadata: { name, labels: worker.pod.labels },
      spec: worker.pod.template.spec,
      status: { podIP: ip, conditions: [{ type: "Ready", status: "True" }] },
    };
    const seen = workersFromPod(pod as Parameters<typeof workersFromPod>[0], mapping);
    if (typeof seen === "string") return [`discovery skips ${name}: ${seen}`];
    if (seen.length !== 1) return [`discovery sees ${seen.length} workers in ${name}, expected one`];
    const found = seen[0]!;
    const expected = {
      role: worker.role === "agg" ? "both" : worker.role,
      httpEndpoint: `${ip}:${portNamed(worker.sidecar.container, "http")}`,
      kvEvents: `tcp://${ip}:${worker.facts.kvEventsPort}`,
      replay: worker.facts.kvReplayPort === undefined ? undefined : `tcp://${ip}:${worker.facts.kvReplayPort}`,
      blockSize: worker.facts.blockSize,
    };
    const actual = {
      role: found.role,
      httpEndpoint: found.httpEndpoint,
      kvEvents: found.kvEvents?.endpoints[0],
      replay: found.kvEvents?.replayEndpoints?.[0],
      blockSize: found.blockSize === undefined ? undefined : String(found.blockSize),
    };
    return Object.entries(expected)
      .filter(([key, value]) => actual[key as keyof typeof actual] !== value)
      .map(
        ([key, value]) =>
          `discovery sees ${name} with ${key} ${actual[key as keyof typeof actual]}, the pod has ${value}`,
      );
  });
};

/**
 * The EPP starts with this environment: its own parser (the one the process runs) accepts every value,
 * and every `DYN_*` variable set is one the EPP reads (a misspelt name would be silently ignored).
 */
export const eppAcceptsEnvironment: EppEnvCheck = (env) => {
  const values = Object.fromEntries(
    [...env].map(([name, variable]) => [name, variable.value ?? `<${variable.source}>`]),
  );
  values.POD_NAMESPACE = POD_NAMESPACE_SENTINEL;
  const problems = [...env.keys()]
    .filter((name) => name.startsWith("DYN_") && !EPP_VARIABLE_NAMES.has(name))
    .map((name) => `${name} is set but the EPP does not read it`);
  try {
    eppConfigFromEnv(values);
  } catch (error) {
    if (!(error instanceof EppConfigError)) throw error;
    problems.push(...error.problems.map((problem) => `the EPP refuses its environment: ${problem}`));
  }
  return problems;
};

/** Checks over the EPP's environment; each gets the resolved env of the EPP container. */
export const EPP_ENV_CHECKS: Record<string, EppEnvCheck> = {
  eppAcceptsEnvironment,
  discoveryConfigAgrees,
  discoverySeesWorkers,
};

export const eppEnvironment = withTopology((objects) => {
  const { env } = epp(objects);
  return Object.entries(EPP_ENV_CHECKS).flatMap(([name, check]) =>
    check(env, objects).map((problem) => `${name}: ${problem}`),
  );
});

/** The checks every model deployment must pass. */
export const SERVING_CHECKS: Record<string, Check> = {
  poolSelectsExactlyWorkers,
  poolTargetsSidecar,
  poolPicksEpp,
  routeTargetsPool,
  eppProbes,
  eppRbac,
  blockSizeAgrees,
  modelAgrees,
  kvEventsAgree,
  rolesAgree,
  gpusMatchParallelism,
  eppEnvironment,
};
