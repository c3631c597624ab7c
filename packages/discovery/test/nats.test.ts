import { Kvm } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { NatsServer, waitFor } from "@dynamo/testkit";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  NatsDiscovery,
  NatsWorkerRegistrar,
  formatWorkerId,
  workerIdFromName,
  type DiscoveryProblem,
  type WorkerInfo,
} from "../src/index.js";
import { TcpGate, names, record } from "./helpers.js";

const LEASE_MS = 1500;
const HEARTBEAT_MS = 250;

function worker(name: string, overrides: Partial<WorkerInfo> = {}): WorkerInfo {
  return {
    id: workerIdFromName(name),
    name,
    role: "decode",
    namespace: "vllm-agg",
    component: "backend",
    httpEndpoint: "127.0.0.1:8000",
    rankHttpEndpoints: ["127.0.0.1:8000"],
    dpSize: 1,
    dpStartRank: 0,
    ...overrides,
  };
}

describe("NATS registry", () => {
  let server: NatsServer;
  let bucketCounter = 0;
  let bucket: string;
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    server = await NatsServer.start();
  });
  afterAll(async () => {
    await server.dispose();
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });

  // Each test uses its own buckets so leftovers of one test never leak into another.
  function freshBucket(): string {
    bucket = `instances-${++bucketCounter}`;
    return bucket;
  }

  async function connection(): Promise<NatsConnection> {
    const nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    cleanups.push(() => nc.close());
    return nc;
  }

  async function registrar(
    info: WorkerInfo,
    nc?: NatsConnection,
    problems?: DiscoveryProblem[],
    lease: { leaseTtlMs: number; heartbeatMs: number } = { leaseTtlMs: LEASE_MS, heartbeatMs: HEARTBEAT_MS },
  ): Promise<NatsWorkerRegistrar> {
    const r = new NatsWorkerRegistrar({
      connection: nc ?? (await connection()),
      worker: info,
      ...lease,
      bucket,
      modelCardBucket: `${bucket}-cards`,
      onProblem: (p) => problems?.push(p),
    });
    await r.register();
    cleanups.push(() => r.deregister());
    return r;
  }

  async function watcher(namespacePrefix = "vllm-agg", component?: string): Promise<NatsDiscovery> {
    const d = new NatsDiscovery({
      servers: server.url,
      namespacePrefix,
      bucket,
      retryMs: 200,
      sweepIntervalMs: 50,
      streamCheckMs: 200,
      ...(component === undefined ? {} : { component }),
    });
    cleanups.push(() => d.stop());
    await d.start();
    return d;
  }

  it("lists registered workers, follows new registrations and clean deregistrations", async () => {
    freshBucket();
    const a = worker("worker-a", {
      dpSize: 2,
      rankHttpEndpoints: ["127.0.0.1:8000", "127.0.0.1:8000"],
      kvEvents: {
        endpoints: ["tcp://127.0.0.1:5557", "tcp://127.0.0.1:5558"],
        replayEndpoints: ["tcp://127.0.0.1:5600", "tcp://127.0.0.1:5601"],
      },
      modelName: "Qwen/Qwen3-0.6B",
      blockSize: 16,
      capacity: { totalKvBlocks: 1024 },
      id: (1n << 64n) - 7n,
    });
    await registrar(a);
    const d = await watcher();
    await d.whenReady(5000);
    expect(d.list()).toEqual([a]);

    const { changes } = record(d);
    const b = await registrar(worker("worker-b", { role: "prefill", component: "prefill" }));
    await waitFor(() => d.list().length === 2, "worker-b added");
    expect(d.get(workerIdFromName("worker-b"))?.role).toBe("prefill");

    await b.deregister();
    await waitFor(() => d.list().length === 1, "worker-b removed", 1000);
    expect(changes.map((c) => `${c.type}:${c.worker.name}`)).toEqual(["added:worker-b", "removed:worker-b"]);
  });

  it("keeps heartbeating workers past their lease and drops a crashed worker when its lease runs out", async () => {
    freshBucket();
    await registrar(worker("alive"));
    const crashingConnection = await connect({ servers: server.url });
    const heartbeatFailures: DiscoveryProblem[] = [];
    await registrar(worker("crashing"), crashingConnection, heartbeatFailures);
    const d = await watcher();
    await d.whenReady(5000);
    expect(names(d)).toEqual(["alive", "crashing"]);

    const { changes } = record(d);
    const crashedAt = Date.now();
    await crashingConnection.close(); // no deregistration: the entry just stops being refreshed
    await waitFor(() => names(d).join() === "alive", "the crashed worker to expire", LEASE_MS * 4);
    const expiredAfter = Date.now() - crashedAt;
    expect(expiredAfter).toBeGreaterThanOrEqual(LEASE_MS - 2 * HEARTBEAT_MS);
    expect(changes).toHaveLength(1);
    expect(changes[0]).toMatchObject({ type: "removed", worker: { name: "crashing" } });

    // The live worker outlasts several lease periods.
    await new Promise((r) => setTimeout(r, LEASE_MS * 1.5));
    expect(names(d)).toEqual(["alive"]);
    expect(heartbeatFailures.length).toBeGreaterThan(0);
  });

  it("round-trips the model card through the object store, sharing one copy per model", async () => {
    freshBucket();
    const files = {
      "tokenizer.json": new TextEncoder().encode(JSON.stringify({ model: { type: "BPE" }, big: "x".repeat(300_000) })),
      "tokenizer_config.json": new TextEncoder().encode('{"bos_token": "<s>"}'),
      "chat_template.jinja": new TextEncoder().encode("{% for m in messages %}{{ m.content }}{% endfor %}"),
    };
    const card = {
      files: Object.fromEntries(Object.entries(files).map(([n, bytes]) => [n, { kind: "bytes" as const, bytes }])),
    };
    await registrar(worker("card-0", { modelName: "org/model", modelCard: card }));
    await registrar(worker("card-1", { modelName: "org/model", modelCard: card }));
    const d = await watcher();
    await waitFor(() => d.list().length === 2, "both workers");

    const listed = d.get(workerIdFromName("card-0"))!;
    expect(listed.modelCard!.files["tokenizer.json"]).toMatchObject({
      kind: "nats-object",
      bucket: `${bucket}-cards`,
      object: "org/model/tokenizer.json",
      size: files["tokenizer.json"].byteLength,
    });
    const fetched = await d.modelCardFiles(listed);
    expect(Object.keys(fetched).sort()).toEqual(Object.keys(files).sort());
    for (const [name, bytes] of Object.entries(files))
      expect(Buffer.from(fetched[name]!).equals(Buffer.from(bytes))).toBe(true);

    const nc = await connection();
    const store = await new Objm(nc).open(`${bucket}-cards`);
    expect((await store.list()).map((info) => info.name).sort()).toEqual([
      "org/model/chat_template.jinja",
      "org/model/tokenizer.json",
      "org/model/tokenizer_config.json",
    ]);
  });

  it("survives a NATS server restart: watch and registrations come back", async () => {
    freshBucket();
    const problems: DiscoveryProblem[] = [];
    await registrar(worker("before-restart"), undefined, problems);
    const d = await watcher();
    await d.whenReady(5000);
    expect(names(d)).toEqual(["before-restart"]);
    const { changes } = record(d);

    await server.restart();
    // The registrar's heartbeats resume; the watcher re-watches and sees registrations made after the restart.
    const late = await registrar(worker("after-restart"));
    await waitFor(() => names(d).join() === "after-restart,before-restart", "both workers after the restart", 10_000);
    await new Promise((r) => setTimeout(r, LEASE_MS * 1.5));
    expect(names(d)).toEqual(["after-restart", "before-restart"]);

    await late.deregister();
    await waitFor(() => names(d).join() === "before-restart", "deregistration seen after the restart", 5000);
    // The worker registered before the restart never flapped.
    expect(changes.map((c) => `${c.type}:${c.worker.name}`)).toEqual(["added:after-restart", "removed:after-restart"]);
  });

  it("registers again right after a reconnect, not once a heartbeat stuck in the outage times out", async () => {
    freshBucket();
    const r = await registrar(worker("prompt"), undefined, undefined, { leaseTtlMs: 1000, heartbeatMs: 200 });
    await server.stop();
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const restartedAt = Date.now();
    await server.restart();
    const kv = await new Kvm(await connection()).open(bucket);
    await waitFor(
      async () => ((await kv.get(r.key))?.created.getTime() ?? 0) >= restartedAt,
      "an entry written after the restart",
      1500,
    );
  });

  it("runs leases on connected time: an outage longer than the lease drops no live worker, a crashed one still expires", async () => {
    freshBucket();
    const lease = { leaseTtlMs: 1000, heartbeatMs: 200 };
    // The live worker reaches the server through a gate, so it can be made to come back after the watcher.
    const gate = await TcpGate.start(server.port);
    cleanups.push(() => gate.dispose());
    const aliveConnection = await connect({ servers: gate.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    cleanups.push(() => aliveConnection.close());
    await registrar(worker("alive"), aliveConnection, undefined, lease);
    const crashing = await connect({ servers: server.url });
    await registrar(worker("crashed"), crashing, undefined, lease);
    const d = await watcher();
    await d.whenReady(5000);
    expect(names(d)).toEqual(["alive", "crashed"]);
    const removedAt = new Map<string, number>();
    d.on("change", (c) => {
      if (c.type === "removed") removedAt.set(c.worker.name, Date.now());
    });

    await crashing.close(); // stops heartbeating without deregistering
    gate.close();
    await server.stop();
    await new Promise((r) => setTimeout(r, 2500));
    // Nothing expires while the watcher cannot see heartbeats.
    expect(names(d)).toEqual(["alive", "crashed"]);
    const listsBefore = d.stats().fullLists;
    const restartedAt = Date.now();
    await server.restart();
    // The watcher is back and has replayed the bucket (which no longer holds the expired entries)
    // before the live worker reconnects and heartbeats again.
    await waitFor(() => d.stats().fullLists > listsBefore, "the watch restarted after the reconnect", 5000);
    await new Promise((r) => setTimeout(r, 150));
    expect(names(d)).toContain("alive");
    gate.open();

    await waitFor(() => names(d).join() === "alive", "the crashed worker to expire after the reconnect", 5000);
    expect(removedAt.get("crashed")!).toBeGreaterThanOrEqual(restartedAt);
    // The live worker outlasts several lease periods after the reconnect and never flaps.
    await new Promise((r) => setTimeout(r, lease.leaseTtlMs * 2.5));
    expect(names(d)).toEqual(["alive"]);
    expect([...removedAt.keys()]).toEqual(["crashed"]);
  });

  it("rides out a lost bucket (server state lost): live workers re-register without flapping, dead ones expire", async () => {
    freshBucket();
    const problems: DiscoveryProblem[] = [];
    await registrar(worker("survivor"), undefined, problems);
    const crashing = await connect({ servers: server.url });
    await registrar(worker("crashed"), crashing);
    const d = await watcher();
    await d.whenReady(5000);
    expect(names(d)).toEqual(["crashed", "survivor"]);
    const { changes } = record(d);

    await crashing.close();
    const nc = await connection();
    await (await new Kvm(nc).open(bucket)).destroy();
    await waitFor(() => d.stats().fullLists >= 2, "the watch restarted on the recreated bucket", 5000);
    await waitFor(() => names(d).join() === "survivor", "the crashed worker's lease to run out", LEASE_MS * 3);
    await new Promise((r) => setTimeout(r, LEASE_MS));
    expect(names(d)).toEqual(["survivor"]);
    expect(changes.map((c) => `${c.type}:${c.worker.name}`)).toEqual(["removed:crashed"]);
    expect(problems[0]?.message).toMatch(/heartbeat failed/);
  });

  it("matches namespaces by prefix (generation rollover) and filters by component", async () => {
    freshBucket();
    await registrar(worker("gen1", { namespace: "vllm-agg" }));
    await registrar(worker("gen2", { namespace: "vllm-agg-7f3a" }));
    await registrar(worker("other", { namespace: "sglang-agg" }));
    await registrar(worker("prefill", { namespace: "vllm-agg-7f3a", component: "prefill", role: "prefill" }));
    const all = await watcher("vllm-agg");
    const backendOnly = await watcher("vllm-agg", "backend");
    await waitFor(() => all.list().length === 3 && backendOnly.list().length === 2, "filtered lists");
    expect(names(all)).toEqual(["gen1", "gen2", "prefill"]);
    expect(names(backendOnly)).toEqual(["gen1", "gen2"]);
  });

  it("is ready with an empty list before any worker registered, then picks the first one up", async () => {
    freshBucket();
    const d = await watcher();
    await d.whenReady(5000);
    expect(d.list()).toEqual([]);
    await registrar(worker("first"));
    await waitFor(() => names(d).join() === "first", "the first registration", 5000);
  });

  it("reports and ignores malformed entries", async () => {
    freshBucket();
    await registrar(worker("good"));
    const nc = await connection();
    const kv = await new Kvm(nc).open(bucket);
    const d = await watcher();
    await d.whenReady(5000);
    const { problems } = record(d);
    const wrongId = formatWorkerId(workerIdFromName("someone-else"));
    await kv.put("vllm-agg.backend.123", "not json");
    await kv.put(
      `vllm-agg.backend.${wrongId}`,
      JSON.stringify({ worker: { name: "x", http: "h:1" }, leaseTtlMs: 1000 }),
    );
    await kv.put(
      "vllm-agg.backend.456",
      JSON.stringify({
        worker: { name: "x", http: "h:1", namespace: "vllm-agg", component: "backend", id: "456" },
        leaseTtlMs: -1,
      }),
    );
    await kv.put("no-dots", "{}");
    await waitFor(() => problems.length === 4, "four problem reports");
    expect(problems.map((p) => p.message)).toEqual([
      expect.stringMatching(/not JSON/),
      expect.stringMatching(/does not match its key/),
      expect.stringMatching(/leaseTtlMs/),
      expect.stringMatching(/key is not/),
    ]);
    expect(names(d)).toEqual(["good"]);
  });
});
