import { waitFor } from "@dynamo/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  KubernetesDiscovery,
  containerWorkerId,
  podWorkerId,
  type KubernetesDiscoveryOptions,
  type WorkerChange,
} from "../src/index.js";
import { FakeKubeApi, inferencePool, pod, type PodSpec } from "./fake-kube-api.js";
import { names, record } from "./helpers.js";

const WORKER = { "nvidia.com/dynamo-component-class": "worker" };
const dynamoLabels = (namespace: string): Record<string, string> => ({
  ...WORKER,
  "nvidia.com/dynamo-namespace": namespace,
});
const summary = (changes: WorkerChange[]): string[] => changes.map((c) => `${c.type}:${c.worker.name}`);

describe("KubernetesDiscovery against a fake API server", () => {
  let api: FakeKubeApi;
  let discovery: KubernetesDiscovery | undefined;

  beforeEach(async () => {
    api = await FakeKubeApi.start("dynamo");
  });
  afterEach(async () => {
    await discovery?.stop();
    discovery = undefined;
    await api.close();
  });

  async function start(options: Partial<KubernetesDiscoveryOptions> = {}): Promise<KubernetesDiscovery> {
    discovery = new KubernetesDiscovery({
      kubeConfig: api.kubeConfig(),
      namespace: "dynamo",
      namespacePrefix: "vllm-agg",
      retryMs: 50,
      ...options,
    });
    await discovery.start();
    await discovery.whenReady(5000);
    return discovery;
  }

  const addPod = (name: string, spec: PodSpec = {}): void =>
    api.apply("pods", pod(name, { labels: dynamoLabels("vllm-agg"), ...spec }));

  it("lists only Ready, non-terminating worker pods with an IP and an http port, then follows the watch", async () => {
    addPod("ready-a", {
      ip: "10.0.0.1",
      labels: { ...dynamoLabels("vllm-agg"), "nvidia.com/dynamo-sub-component-type": "decode" },
    });
    addPod("ready-b", { ip: "10.0.0.2" });
    addPod("not-ready", { ready: false });
    addPod("no-ip", { ip: null });
    addPod("terminating", { terminating: true });
    addPod("no-http", { containers: [{ name: "main", ready: true }] });
    addPod("other-namespace", { labels: dynamoLabels("sglang") });
    api.apply("pods", pod("not-a-worker", { labels: { "nvidia.com/dynamo-namespace": "vllm-agg" } }));
    const d = await start({ kvEventReplayPort: 5600, modelName: "Qwen/Qwen3-0.6B", blockSize: 16 });

    expect(names(d)).toEqual(["ready-a", "ready-b"]);
    expect(d.get(podWorkerId("ready-a"))).toEqual({
      id: podWorkerId("ready-a"),
      name: "ready-a",
      role: "decode",
      namespace: "vllm-agg",
      component: "",
      httpEndpoint: "10.0.0.1:8000",
      rankHttpEndpoints: ["10.0.0.1:8000"],
      dpSize: 1,
      dpStartRank: 0,
      kvEvents: { endpoints: ["tcp://10.0.0.1:5557"], replayEndpoints: ["tcp://10.0.0.1:5600"] },
      modelName: "Qwen/Qwen3-0.6B",
      blockSize: 16,
    });
    expect(d.get(podWorkerId("ready-b"))?.role).toBe("both");
    await waitFor(() => api.openWatches() === 1, "the pod watch");
    expect(api.podWatchSelectors[0]).toBe("nvidia.com/dynamo-component-class=worker,nvidia.com/dynamo-namespace");

    const { changes } = record(d);
    addPod("ready-c", { ip: "10.0.0.3" });
    addPod("ready-b", { ip: "10.0.0.22" });
    api.remove("pods", "ready-a");
    await waitFor(() => changes.length === 3, "three watch changes");
    expect(summary(changes)).toEqual(["added:ready-c", "updated:ready-b", "removed:ready-a"]);
    expect(d.get(podWorkerId("ready-b"))?.httpEndpoint).toBe("10.0.0.22:8000");
  });

  it("drops a pod whose readiness flips off, and adds it back when Ready again", async () => {
    addPod("flip", { ip: "10.0.0.9" });
    const d = await start();
    const { changes } = record(d);
    addPod("flip", { ip: "10.0.0.9", ready: false });
    await waitFor(() => d.list().length === 0, "not-ready pod removed");
    addPod("flip", { ip: "10.0.0.9", ready: true });
    await waitFor(() => d.list().length === 1, "ready pod back");
    addPod("flip", { ip: "10.0.0.9", terminating: true });
    await waitFor(() => d.list().length === 0, "terminating pod removed");
    expect(summary(changes)).toEqual(["removed:flip", "added:flip", "removed:flip"]);
  });

  it("resumes a closed watch from its last resourceVersion without relisting, bookmarks included", async () => {
    addPod("a");
    const d = await start();
    const { changes } = record(d);
    for (let round = 0; round < 3; round++) {
      await waitFor(() => api.openWatches() === 1, `watch ${round} open`);
      api.bookmark();
      api.closeWatches();
      // Changes made while no watch is open arrive through the resumed watch.
      addPod(`during-gap-${round}`);
    }
    await waitFor(() => d.list().length === 4, "all pods after restarts");
    expect(summary(changes)).toEqual(["added:during-gap-0", "added:during-gap-1", "added:during-gap-2"]);
    expect(api.requests.lists.pods).toBe(1);
    expect(api.requests.watches.pods).toBeGreaterThanOrEqual(4);
  });

  for (const goneAs of ["event", "status"] as const) {
    it(`relists after 410 Gone (sent as ${goneAs === "event" ? "an ERROR watch event" : "the HTTP status"}) and diffs the result`, async () => {
      api.goneAs = goneAs;
      addPod("stays");
      addPod("deleted-while-away");
      const d = await start();
      const { changes } = record(d);
      await waitFor(() => api.openWatches() === 1, "watch open");
      api.closeWatches();
      api.remove("pods", "deleted-while-away");
      addPod("added-while-away");
      api.compact();
      await waitFor(() => names(d).join() === "added-while-away,stays", "the relisted state");
      expect(summary(changes).sort()).toEqual(["added:added-while-away", "removed:deleted-while-away"]);
      expect(api.requests.lists.pods).toBe(2);
      expect(d.watchStats().pods.gone).toBe(1);
      expect(d.stats().fullLists).toBe(2);

      addPod("after-relist");
      await waitFor(() => d.list().length === 3, "watch resumed after the relist");
    });
  }

  it("paces re-watches against a server that ends every watch at once", async () => {
    addPod("a");
    api.endWatchesAtOnce = true;
    const d = await start({ retryMs: 100 });
    const before = api.requests.watches.pods;
    await new Promise((r) => setTimeout(r, 500));
    expect(api.requests.watches.pods - before).toBeLessThanOrEqual(6);
    api.endWatchesAtOnce = false;
    addPod("b");
    await waitFor(() => d.list().length === 2, "changes once watches stay open", 5000);
  });

  it("container mode: one worker per Ready container, `main` keeps the pod's id", async () => {
    addPod("multi", {
      ip: "10.0.0.5",
      containers: [
        { name: "main", ready: true, httpPort: 8000 },
        { name: "engine-b", ready: true },
        { name: "engine-c", ready: false },
      ],
      ready: false,
    });
    const d = await start({ mode: "container" });
    expect(
      d
        .list()
        .map((w) => [w.name, w.id, w.httpEndpoint])
        .sort(),
    ).toEqual(
      [
        ["multi/engine-b", containerWorkerId("multi", "engine-b"), "10.0.0.5:8000"],
        ["multi/main", podWorkerId("multi"), "10.0.0.5:8000"],
      ].sort(),
    );
    const { changes } = record(d);
    addPod("multi", {
      ip: "10.0.0.5",
      containers: [
        { name: "main", ready: false, httpPort: 8000 },
        { name: "engine-b", ready: true },
        { name: "engine-c", ready: true },
      ],
    });
    await waitFor(() => changes.length === 2, "container readiness changes");
    expect(summary(changes).sort()).toEqual(["added:multi/engine-c", "removed:multi/main"]);
  });

  it("follows a rolling update into a generation-suffixed Dynamo namespace without restarting", async () => {
    addPod("gen1-a", { labels: dynamoLabels("vllm-agg") });
    addPod("gen1-b", { labels: dynamoLabels("vllm-agg") });
    addPod("unrelated", { labels: dynamoLabels("trtllm-agg") });
    const d = await start();
    expect(names(d)).toEqual(["gen1-a", "gen1-b"]);

    addPod("gen2-a", { labels: dynamoLabels("vllm-agg-5f6c7d") });
    api.remove("pods", "gen1-a");
    addPod("gen2-b", { labels: dynamoLabels("vllm-agg-5f6c7d") });
    api.remove("pods", "gen1-b");
    await waitFor(() => names(d).join() === "gen2-a,gen2-b", "the new generation");
    expect(d.list().every((w) => w.namespace === "vllm-agg-5f6c7d")).toBe(true);
    expect(api.requests.lists.pods).toBe(1);
  });

  it("selects pods through an InferencePool (target ports as DP ranks) and follows selector, port and pool edits", async () => {
    api.apply("inferencepools", inferencePool("qwen-pool", { app: "blue" }, [3000, 3002]));
    api.apply("pods", pod("blue-0", { ip: "10.1.0.1", labels: { app: "blue" } }));
    api.apply("pods", pod("green-0", { ip: "10.1.0.2", labels: { app: "green" } }));
    api.apply("inferencepools", inferencePool("other-pool", { app: "green" }, [8000]));
    const d = await start({ inferencePool: "qwen-pool" });

    expect(d.list()).toHaveLength(1);
    expect(d.list()[0]).toMatchObject({
      name: "blue-0",
      dpSize: 2,
      httpEndpoint: "10.1.0.1:3000",
      rankHttpEndpoints: ["10.1.0.1:3000", "10.1.0.1:3002"],
      kvEvents: { endpoints: ["tcp://10.1.0.1:5557", "tcp://10.1.0.1:5558"] },
    });
    const { changes } = record(d);

    api.apply("inferencepools", inferencePool("qwen-pool", { app: "green" }, [3000, 3002]));
    await waitFor(() => names(d).join() === "green-0", "the edited selector");
    expect(summary(changes).sort()).toEqual(["added:green-0", "removed:blue-0"]);
    // The new selector is listed before it is watched: the watch may open just after the list applied.
    await waitFor(() => api.podWatchSelectors.at(-1) === "app=green", "the pod watch on the edited selector");

    api.apply("inferencepools", inferencePool("qwen-pool", { app: "green" }, [3000]));
    await waitFor(() => d.list()[0]?.dpSize === 1, "the edited target ports");
    expect(d.list()[0]!.rankHttpEndpoints).toEqual(["10.1.0.2:3000"]);

    api.apply("inferencepools", { ...inferencePool("qwen-pool", {}, []), spec: { selector: {} } });
    await waitFor(() => d.stats().problems > 0, "the invalid edit reported");
    expect(names(d)).toEqual(["green-0"]);

    api.remove("inferencepools", "qwen-pool");
    await waitFor(() => d.list().length === 0, "no workers without the pool");
    api.apply("inferencepools", inferencePool("qwen-pool", { app: "blue" }, [3000]));
    await waitFor(() => names(d).join() === "blue-0", "the recreated pool");
  });

  it("drops readiness while the API server stops answering and regains it with a fresh list", async () => {
    addPod("a");
    addPod("b");
    const d = await start();
    const { changes, problems } = record(d);
    const readiness: string[] = [];
    d.on("ready", () => readiness.push("ready"));
    d.on("unready", () => readiness.push("unready"));
    await waitFor(() => api.openWatches() === 1, "the pod watch");
    const lists = api.requests.lists.pods;

    api.unavailable = true;
    api.closeWatches();
    await waitFor(() => !d.ready, "readiness dropped");
    expect(problems[0]!.message).toMatch(/watch pods failed/);
    // The server changes meanwhile; the relists fail, and the last list stays in force.
    api.remove("pods", "b");
    addPod("c");
    await waitFor(() => problems.some((p) => /list pods failed/.test(p.message)), "a failed relist");
    await expect(d.whenReady(100)).rejects.toThrow(
      /not ready after 100 ms; last problem: kubernetes:pods: (list|watch) pods failed/,
    );
    expect(d.ready).toBe(false);
    expect(names(d)).toEqual(["a", "b"]);
    expect(changes).toEqual([]);

    api.unavailable = false;
    await d.whenReady(5000);
    expect(names(d)).toEqual(["a", "c"]);
    expect(summary(changes).sort()).toEqual(["added:c", "removed:b"]);
    expect(readiness).toEqual(["unready", "ready"]);
    expect(api.requests.lists.pods).toBe(lists + 1);
    addPod("d");
    await waitFor(() => names(d).join() === "a,c,d", "the watch resumed after the relist");
    expect(d.ready).toBe(true);
  });

  it("with an InferencePool, drops readiness when the connection is lost and regains it once pool and pods are listed again", async () => {
    api.apply("inferencepools", inferencePool("pool", { app: "blue" }, [3000]));
    api.apply("pods", pod("blue-0", { ip: "10.1.0.1", labels: { app: "blue" } }));
    const d = await start({ inferencePool: "pool" });
    const readiness: string[] = [];
    d.on("ready", () => readiness.push("ready"));
    d.on("unready", () => readiness.push("unready"));
    await waitFor(() => api.openWatches() === 2, "the pool and pod watches");

    const port = Number(new URL(api.url).port);
    await api.close();
    await waitFor(() => !d.ready, "readiness dropped");
    await new Promise((r) => setTimeout(r, 200));
    expect(d.ready).toBe(false);
    expect(names(d)).toEqual(["blue-0"]);

    // A restarted API server (new state) with the pool's ports changed and another pod.
    api = await FakeKubeApi.start("dynamo", port);
    api.apply("inferencepools", inferencePool("pool", { app: "blue" }, [3000, 3001]));
    api.apply("pods", pod("blue-0", { ip: "10.1.0.1", labels: { app: "blue" } }));
    api.apply("pods", pod("blue-1", { ip: "10.1.0.2", labels: { app: "blue" } }));
    await d.whenReady(5000);
    expect(names(d)).toEqual(["blue-0", "blue-1"]);
    expect(d.list().map((w) => w.dpSize)).toEqual([2, 2]);
    expect(api.requests.lists).toEqual({ pods: 1, inferencepools: 1 });
    expect(readiness).toEqual(["unready", "ready"]);
  });

  it("retries while the API server is unreachable and becomes ready once it answers", async () => {
    const config = api.kubeConfig();
    const port = Number(new URL(api.url).port);
    await api.close();
    discovery = new KubernetesDiscovery({
      kubeConfig: config,
      namespace: "dynamo",
      namespacePrefix: "vllm-agg",
      retryMs: 50,
    });
    const { problems } = record(discovery);
    await discovery.start();
    await waitFor(() => problems.length >= 2, "list failures reported");
    expect(discovery.ready).toBe(false);
    expect(problems[0]!.message).toMatch(/list pods failed/);

    api = await FakeKubeApi.start("dynamo", port);
    addPod("late");
    await discovery.whenReady(5000);
    expect(names(discovery)).toEqual(["late"]);
  });
});
