import { parseCli } from "@dynamo/mocker";
import { describe, expect, it } from "vitest";
import { isBuildingBlock, renderAll, renderDir, renderServing } from "./support/catalogue.js";
import { GATEWAY_CHECKS } from "./support/checks-gateway.js";
import { REPLICA_CHECKS } from "./support/checks-replicas.js";
import { SERVING_CHECKS } from "./support/checks-serving.js";
import { SIDECAR_CHECKS } from "./support/checks-sidecars.js";
import { workloadChecks, type Check } from "./support/checks-workloads.js";
import { allContainers, expandedArgs, find, flagValues, ofKind, type K8sObject } from "./support/objects.js";
import { workers } from "./support/serving.js";

function runChecks(checks: Record<string, Check>, objects: readonly K8sObject[]): string[] {
  return Object.entries(checks).flatMap(([name, check]) => check(objects).map((problem) => `${name}: ${problem}`));
}

/** PersistentVolumeClaims the model-cache kustomizations create, which the recipes mount. */
async function modelCacheClaims(): Promise<string[]> {
  const sets = (await renderAll()).filter((set) => set.name.endsWith("model-cache"));
  return sets.flatMap((set) => ofKind(set.objects, "PersistentVolumeClaim").map((claim) => claim.metadata.name));
}

describe("consistency of every rendered set", () => {
  it("workloads: no namespace, pinned images, resources, probes on declared ports, references resolve", async () => {
    // Building blocks (base, workers/*) refer to objects only their overlays bring together.
    const complete = workloadChecks(await modelCacheClaims());
    const { referencesResolve: _references, ...standalone } = complete;
    const problems = (await renderAll()).flatMap((set) =>
      runChecks(isBuildingBlock(set.name) ? standalone : complete, set.objects).map((p) => `${set.name}: ${p}`),
    );
    expect(problems).toEqual([]);
  });

  it("model deployments: pool, EPP, route, block size, model, KV events, roles, GPUs, EPP environment", async () => {
    const serving = await renderServing();
    expect(serving.length).toBeGreaterThanOrEqual(11);
    const problems = serving.flatMap((set) =>
      runChecks({ ...SERVING_CHECKS, ...REPLICA_CHECKS }, set.objects).map((p) => `${set.name}: ${p}`),
    );
    expect(problems).toEqual([]);
  });

  it("worker side: every frontend sidecar accepts its flags and environment", async () => {
    // Model deployments only: building blocks leave the ConfigMap their flags read to the overlays.
    const sets = await renderServing();
    const problems = sets.flatMap((set) => runChecks(SIDECAR_CHECKS, set.objects).map((p) => `${set.name}: ${p}`));
    expect(problems).toEqual([]);
  });

  it("gateway side: DestinationRule, AgentgatewayParameters and Gateway", async () => {
    const problems = (await renderAll()).flatMap((set) =>
      runChecks(GATEWAY_CHECKS, set.objects).map((p) => `${set.name}: ${p}`),
    );
    expect(problems).toEqual([]);
  });
});

describe("what each overlay deploys", () => {
  it("agg: two aggregated vLLM workers, one GPU each, DYN_ENFORCE_DISAGG=false", async () => {
    const objects = await renderDir("overlays/agg");
    const all = workers(objects);
    expect(all.map((w) => [w.pod.owner.metadata.name, w.role, w.facts.engine])).toEqual([
      ["dynamo-worker", "agg", "vllm"],
    ]);
    expect((all[0]!.pod.owner.spec as { replicas: number }).replicas).toBe(2);
    expect(find(objects, "ConfigMap", objectName(objects, "ConfigMap"))?.data).toMatchObject({
      DYN_ENFORCE_DISAGG: "false",
    });
  });

  it("disagg: one prefill and two decode vLLM workers with NIXL, DYN_ENFORCE_DISAGG=true", async () => {
    const objects = await renderDir("overlays/disagg");
    const summary = workers(objects).map((w) => [
      w.role,
      (w.pod.owner.spec as { replicas: number }).replicas,
      w.facts.kvConnector,
    ]);
    expect(summary.sort()).toEqual([
      ["decode", 2, "NixlConnector"],
      ["prefill", 1, "NixlConnector"],
    ]);
    expect(find(objects, "ConfigMap", objectName(objects, "ConfigMap"))?.data).toMatchObject({
      DYN_ENFORCE_DISAGG: "true",
    });
  });

  it("mocker and mocker-disagg: no vLLM and no GPU anywhere", async () => {
    for (const overlay of ["overlays/mocker", "overlays/mocker-disagg"]) {
      const containers = allContainers(await renderDir(overlay));
      expect(
        containers.filter((ref) => ref.container.image?.startsWith("vllm/")).map((ref) => ref.where),
        overlay,
      ).toEqual([]);
      const gpus = containers.filter((ref) => JSON.stringify(ref.container.resources ?? {}).includes("nvidia.com/gpu"));
      expect(
        gpus.map((ref) => ref.where),
        overlay,
      ).toEqual([]);
    }
    const modes = workers(await renderDir("overlays/mocker-disagg")).map((w) => w.facts.disaggregationMode);
    expect(modes.sort()).toEqual(["decode", "prefill"]);
  });

  it("mocker and mocker-disagg: the mocker's own parser accepts every rendered mocker command line", async () => {
    let checked = 0;
    for (const overlay of ["overlays/mocker", "overlays/mocker-disagg"]) {
      for (const worker of workers(await renderDir(overlay)).filter((w) => w.facts.engine === "mocker")) {
        const parsed = parseCli(expandedArgs(worker.engine, worker.engineEnv));
        expect(parsed.help, worker.engine.where).toBe(false);
        if (parsed.help) continue;
        expect(parsed.options, worker.engine.where).toMatchObject({
          disaggregationMode: worker.role === "agg" ? "agg" : worker.role,
          blockSize: Number(worker.facts.blockSize),
          zmqKvEventsPorts: [worker.facts.kvEventsPort],
        });
        checked++;
      }
    }
    expect(checked).toBe(3);
  });

  it("istio: the agg deployment plus the EPP's DestinationRule and the proxy's AgentgatewayParameters", async () => {
    const agg = await renderDir("overlays/agg");
    const istio = await renderDir("overlays/istio");
    const names = (objects: readonly K8sObject[]) => objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    expect(names(istio)).toEqual(
      [...names(agg), "AgentgatewayParameters/inference-gateway-params", "DestinationRule/dynamo-epp"].sort(),
    );
  });

  it("llama-3-70b: 4-GPU aggregated and decode engines, 2-GPU prefill engines, served from the model cache", async () => {
    const parallelism = async (dir: string) =>
      workers(await renderDir(dir))
        .map((w) => [w.role, flagValues(w.engine.container.args ?? [], "--tensor-parallel-size")[0], w.facts.modelPath])
        .sort();
    const path = "/models/RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic";
    expect(await parallelism("recipes/llama-3-70b/agg")).toEqual([["agg", "4", path]]);
    expect(await parallelism("recipes/llama-3-70b/disagg-single-node")).toEqual([
      ["decode", "4", path],
      ["prefill", "2", path],
    ]);
  });
});

function objectName(objects: readonly K8sObject[], kind: string): string {
  const matching = ofKind(objects, kind);
  if (matching.length !== 1) throw new Error(`expected one ${kind}, found ${matching.length}`);
  return matching[0]!.metadata.name;
}

type Json = Record<string, unknown>;

/** A copy of `objects` with one object changed by `change`. */
function mutated(
  objects: readonly K8sObject[],
  kind: string,
  name: string,
  change: (object: Json) => void,
): K8sObject[] {
  const copy = structuredClone(objects) as K8sObject[];
  const object = find(copy, kind, name);
  if (!object) throw new Error(`${kind}/${name} is not rendered`);
  change(object as unknown as Json);
  return copy;
}

function podSpec(object: Json): { containers: Json[]; serviceAccountName?: string } {
  return ((object.spec as Json).template as Json).spec as { containers: Json[] };
}

function container(object: Json, name: string): Json {
  const found = podSpec(object).containers.find((c) => c.name === name);
  if (!found) throw new Error(`no container ${name}`);
  return found;
}

describe("the checks catch what would break in a cluster", () => {
  const agg = () => renderDir("overlays/agg");
  const problemsOf = (checks: Record<string, Check>, objects: readonly K8sObject[]) =>
    runChecks(checks, objects).join("\n");
  const serving = (objects: readonly K8sObject[]) => problemsOf(SERVING_CHECKS, objects);
  const workloads = (objects: readonly K8sObject[]) => problemsOf(workloadChecks(), objects);

  it("an engine block size that differs from the EPP's", async () => {
    const objects = mutated(await agg(), "Deployment", "dynamo-worker", (d) => {
      const args = container(d, "main").args as string[];
      args[args.findIndex((a) => a.startsWith("--block-size"))] = "--block-size=16";
    });
    const problems = serving(objects);
    expect(problems).toMatch(/blockSizeAgrees: .*--block-size 16 ≠ the EPP's DYN_KV_CACHE_BLOCK_SIZE 64/);
    expect(problems).toMatch(/discoverySeesWorkers: discovery sees dynamo-worker-0 with blockSize 64, the pod has 16/);
  });

  it("a pool selector that also picks the EPP, or misses a worker", async () => {
    const objects = await agg();
    const workerLabels = (find(objects, "InferencePool", "dynamo-pool")!.spec as { selector: { matchLabels: Json } })
      .selector.matchLabels;
    const grabbing = mutated(objects, "Deployment", "dynamo-epp", (d) => {
      Object.assign(((d.spec as Json).template as { metadata: { labels: Json } }).metadata.labels, workerLabels);
    });
    expect(serving(grabbing)).toMatch(/selects Deployment\/dynamo-epp, which is not a worker/);
    const missing = mutated(objects, "InferencePool", "dynamo-pool", (p) => {
      ((p.spec as Json).selector as { matchLabels: Json }).matchLabels.tier = "gpu";
    });
    expect(serving(missing)).toMatch(/does not select worker Deployment\/dynamo-worker/);
  });

  it("a pool target port that is the engine's instead of the sidecar's", async () => {
    const objects = mutated(await agg(), "InferencePool", "dynamo-pool", (p) => {
      (p.spec as { targetPorts: { number: number }[] }).targetPorts[0]!.number = 8001;
    });
    const problems = serving(objects);
    expect(problems).toMatch(/targets port 8001, but .* serves http on 8000/);
    expect(problems).toMatch(
      /discovery sees dynamo-worker-0 with httpEndpoint 10.0.0.1:8001, the pod has 10.0.0.1:8000/,
    );
  });

  it("a probe on an undeclared port, a container without resources, an unpinned image", async () => {
    const objects = mutated(await agg(), "Deployment", "dynamo-worker", (d) => {
      ((container(d, "frontend").readinessProbe as Json).httpGet as Json).port = "metrics";
      delete container(d, "frontend").resources;
      container(d, "main").image = "vllm/vllm-openai:latest";
    });
    const problems = workloads(objects);
    expect(problems).toMatch(/container frontend: readinessProbe targets port metrics/);
    expect(problems).toMatch(/container frontend: no requests.cpu, requests.memory, limits.memory/);
    expect(problems).toMatch(/image vllm\/vllm-openai:latest is not pinned/);
  });

  it("project images of different releases, and a namespace set in a manifest", async () => {
    const objects = mutated(await agg(), "Deployment", "dynamo-epp", (d) => {
      container(d, "epp").image = "dynamo-gaie/epp:0.2.0";
      (d.metadata as Json).namespace = "prod";
    });
    const problems = workloads(objects);
    expect(problems).toMatch(/the project's images use different tags/);
    expect(problems).toMatch(/Deployment\/dynamo-epp sets namespace prod/);
  });

  it("a ConfigMap key a container reads that is not there, and a Service port with no target", async () => {
    const objects = await agg();
    const configMap = objectName(objects, "ConfigMap");
    const withoutKey = mutated(objects, "ConfigMap", configMap, (c) => delete (c.data as Json).DYN_MODEL_NAME);
    expect(workloads(withoutKey)).toMatch(
      /DYN_MODEL_NAME reads ConfigMap dynamo-epp-config-\w+ key DYN_MODEL_NAME, which is not rendered/,
    );
    const badTarget = mutated(objects, "Service", "dynamo-epp", (s) => {
      (s.spec as { ports: Json[] }).ports[0]!.targetPort = "grpc";
    });
    expect(workloads(badTarget)).toMatch(
      /Service\/dynamo-epp port 9002 targets grpc, not declared by Deployment\/dynamo-epp/,
    );
  });

  it("an EPP environment the discovery rejects", async () => {
    const objects = await agg();
    const broken = mutated(objects, "ConfigMap", objectName(objects, "ConfigMap"), (c) => {
      (c.data as Json).DYN_KUBE_DISCOVERY_MODE = "containers";
    });
    expect(serving(broken)).toMatch(
      /discovery rejects the EPP's environment: DYN_KUBE_DISCOVERY_MODE="containers" must be one of pod, container/,
    );
  });

  it("an EPP environment the EPP itself refuses, or with a variable it does not read", async () => {
    const objects = await agg();
    const broken = mutated(objects, "ConfigMap", objectName(objects, "ConfigMap"), (c) => {
      (c.data as Json).DYN_SECURE_SERVING = "maybe";
      (c.data as Json).DYN_KV_CACHE_BLOCKSIZE = "64";
    });
    const problems = serving(broken);
    expect(problems).toMatch(
      /eppAcceptsEnvironment: the EPP refuses its environment: DYN_SECURE_SERVING: expected true or false/,
    );
    expect(problems).toMatch(/eppAcceptsEnvironment: DYN_KV_CACHE_BLOCKSIZE is set but the EPP does not read it/);
  });

  it("EPP replicas that would route on their own bookings, or that a drain could take all at once", async () => {
    const objects = await agg();
    const replicaProblems = (set: readonly K8sObject[]) => problemsOf(REPLICA_CHECKS, set);
    expect(replicaProblems(objects)).toBe("");
    const unsynced = mutated(objects, "ConfigMap", objectName(objects, "ConfigMap"), (c) => {
      delete (c.data as Json).DYN_ROUTER_REPLICA_SYNC;
    });
    expect(replicaProblems(unsynced)).toMatch(/3 EPP replicas without DYN_ROUTER_REPLICA_SYNC=true/);
    const unbudgeted = objects.filter((o) => o.kind !== "PodDisruptionBudget");
    expect(replicaProblems(unbudgeted)).toMatch(/3 EPP replicas and no PodDisruptionBudget selecting them/);
  });

  it("RBAC that cannot watch pods, and a startup probe shorter than 30 minutes", async () => {
    const objects = mutated(await agg(), "Role", "dynamo-epp", (r) => {
      (r.rules as { verbs: string[] }[])[0]!.verbs = ["get", "list"];
    });
    expect(serving(objects)).toMatch(/ServiceAccount dynamo-epp may not watch pods/);
    const hasty = mutated(objects, "Deployment", "dynamo-epp", (d) => {
      (container(d, "epp").startupProbe as Json).failureThreshold = 30;
    });
    expect(serving(hasty)).toMatch(/startupProbe allows 10 s × 30, not 10 s × 180/);
  });

  it("KV events on a port the EPP does not dial, and a served model the EPP does not route", async () => {
    const objects = mutated(await agg(), "Deployment", "dynamo-worker", (d) => {
      const main = container(d, "main");
      (main.ports as Json[]).find((p) => p.name === "kv-events")!.containerPort = 5600;
      const args = main.args as string[];
      args[args.findIndex((a) => a.startsWith("--served-model-name"))] = "--served-model-name=qwen";
    });
    const problems = serving(objects);
    expect(problems).toMatch(/publishes on 5557, its kv-events port is 5600/);
    expect(problems).toMatch(/serves qwen, the EPP routes Qwen\/Qwen3-0.6B/);
  });

  it("disaggregated workers without DYN_ENFORCE_DISAGG, or a mocker in the wrong mode", async () => {
    const disagg = await renderDir("overlays/disagg");
    const relaxed = mutated(disagg, "ConfigMap", objectName(disagg, "ConfigMap"), (c) => {
      (c.data as Json).DYN_ENFORCE_DISAGG = "false";
    });
    expect(serving(relaxed)).toMatch(/rolesAgree: DYN_ENFORCE_DISAGG=false for disaggregated workers/);
    const mocker = mutated(await renderDir("overlays/mocker-disagg"), "Deployment", "dynamo-worker-prefill", (d) => {
      const args = container(d, "main").args as string[];
      args[args.findIndex((a) => a.startsWith("--disaggregation-mode"))] = "--disaggregation-mode=decode";
    });
    expect(serving(mocker)).toMatch(/--disaggregation-mode decode on a prefill worker/);
  });

  it("a vLLM engine with more tensor-parallel ranks than GPUs", async () => {
    const objects = mutated(await agg(), "Deployment", "dynamo-worker", (d) => {
      (container(d, "main").args as string[]).push("--tensor-parallel-size=2");
    });
    expect(serving(objects)).toMatch(/gpusMatchParallelism: .*: 1 GPUs for tensor parallelism 2/);
  });

  it("a DestinationRule without TLS on the ext_proc port, and a Gateway whose parameters are missing", async () => {
    const rule = mutated(await renderDir("overlays/istio"), "DestinationRule", "dynamo-epp", (r) => {
      ((r.spec as Json).trafficPolicy as { portLevelSettings: { tls: Json }[] }).portLevelSettings[0]!.tls.mode =
        "ISTIO_MUTUAL";
    });
    expect(problemsOf(GATEWAY_CHECKS, rule)).toMatch(/port 9002 needs tls mode SIMPLE with insecureSkipVerify/);
    const gateway = mutated(await renderDir("gateway/agentgateway"), "Gateway", "inference-gateway", (g) => {
      ((g.spec as Json).infrastructure as { parametersRef: Json }).parametersRef.name = "params";
    });
    expect(problemsOf(GATEWAY_CHECKS, gateway)).toMatch(
      /parametersRef .* does not resolve to rendered AgentgatewayParameters/,
    );
  });
});
