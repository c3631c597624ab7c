import { NatsServer, waitFor } from "@dynamo/testkit";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { RouterService } from "../src/index.js";
import { BS, FakeWorker, prompt, quiet } from "./support/cluster.js";

let server: NatsServer;
const cleanups: Array<() => Promise<void>> = [];
let namespaces = 0;
const freshNamespace = () => `svc${process.pid}n${namespaces++}`;

beforeAll(async () => {
  server = await NatsServer.start();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  await server.dispose();
});

async function worker(id: bigint, namespace: string, options: { bridge?: boolean } = {}): Promise<FakeWorker> {
  const w = await FakeWorker.start(server, id, namespace, options);
  cleanups.push(() => w.close());
  return w;
}

async function service(namespacePrefix: string, eventPlane: "nats" | "zmq"): Promise<RouterService> {
  const s = await RouterService.start({
    router: { blockSize: BS, rng: () => 0.5 },
    settings: { discovery: "nats", eventPlane, natsServer: [server.url], namespace: namespacePrefix },
    tokenizer: false,
    log: quiet,
  });
  cleanups.push(() => s.stop());
  return s;
}

/** Where a query-only route of `tokens` goes, and with how much overlap. */
async function probe(s: RouterService, tokens: Uint32Array) {
  const d = await s.route({ tokens, queryOnly: true });
  return { workerId: d.worker.workerId, overlap: d.overlapBlocks, endpoint: d.endpoint };
}

describe("RouterService on NATS: discovery, the event plane and the router's index", () => {
  it("routes to the worker holding the prefix once its events arrive through ZeroMQ, the bridge and NATS", async () => {
    const ns = freshNamespace();
    const [a, b] = [await worker(101n, ns), await worker(102n, ns)];
    const s = await service(ns, "nats");
    await s.whenReady(20_000);
    expect(s.status()).toMatchObject({ ready: true, workers: 2, eventPlane: "nats", blockSize: BS });
    const tokens = prompt(1);
    expect((await probe(s, tokens)).overlap).toBe(0);

    await b.cache(tokens, 7_000n);
    await waitFor(async () => (await probe(s, tokens)).overlap === 8, "worker 102's blocks in the router's index");
    expect(await probe(s, tokens)).toEqual({ workerId: 102n, overlap: 8, endpoint: b.info.httpEndpoint });
    // The other worker's prefix goes to it.
    await a.cache(prompt(2), 9_000n);
    await waitFor(async () => (await probe(s, prompt(2))).overlap === 8, "worker 101's blocks");
    expect((await probe(s, prompt(2))).workerId).toBe(101n);
  });

  it("drops a worker that leaves discovery from candidates, index and bookings", async () => {
    const ns = freshNamespace();
    const [a, b] = [await worker(111n, ns), await worker(112n, ns)];
    const s = await service(ns, "nats");
    await s.whenReady(20_000);
    const tokens = prompt(3);
    await a.cache(tokens, 1_000n);
    await waitFor(async () => (await probe(s, tokens)).overlap === 8, "worker 111's blocks");
    const booked = await s.route({ tokens });
    expect(booked.worker.workerId).toBe(111n);
    expect(s.index!.dump().some((e) => e.workerId === 111n)).toBe(true);

    await a.deregister();
    await waitFor(() => s.status().workers === 1, "worker 111 leaving");
    expect(s.index!.dump().some((e) => e.workerId === 111n)).toBe(false);
    expect(s.status().activeBookings).toBe(0);
    expect(s.free(booked.bookingId)).toBe(false);
    for (let i = 0; i < 5; i++) expect((await probe(s, tokens)).workerId).toBe(112n);
    // Its late events are not indexed any more.
    await a.cache(prompt(4), 2_000n);
    await b.cache(prompt(5), 3_000n);
    await waitFor(async () => (await probe(s, prompt(5))).overlap === 8, "worker 112 still followed");
    expect((await probe(s, prompt(4))).overlap).toBe(0);
  });

  it("follows a worker-generation rollover (new pods, new ids, new namespace suffix) without a restart", async () => {
    const prefix = freshNamespace();
    const gen1 = `${prefix}-5f6c7d`;
    const gen2 = `${prefix}-8a9b0c`;
    const old = [await worker(121n, gen1), await worker(122n, gen1)];
    const s = await service(prefix, "nats");
    await s.whenReady(20_000);
    await old[0]!.cache(prompt(6), 1_000n);
    await waitFor(async () => (await probe(s, prompt(6))).overlap === 8, "generation 1's events");
    expect((await probe(s, prompt(6))).workerId).toBe(121n);

    const fresh = [await worker(131n, gen2), await worker(132n, gen2)];
    for (const w of old) await w.deregister();
    await waitFor(
      () =>
        s
          .listWorkers()
          .map((w) => w.id)
          .sort()
          .join() === "131,132",
      "the service to follow the new generation",
    );
    expect(s.index!.size).toBe(0);
    // Events of the new generation travel on the new namespace's subject, and steer routing.
    await fresh[1]!.cache(prompt(7), 4_000n);
    await waitFor(async () => (await probe(s, prompt(7))).overlap === 8, "generation 2's events");
    expect((await probe(s, prompt(7))).workerId).toBe(132n);
    expect([131n, 132n]).toContain((await probe(s, prompt(6))).workerId);
  });

  it("subscribes straight to each worker's vLLM ZeroMQ publisher when the event plane is zmq", async () => {
    const ns = freshNamespace();
    const [, b] = [await worker(141n, ns, { bridge: false }), await worker(142n, ns, { bridge: false })];
    const s = await service(ns, "zmq");
    await s.whenReady(20_000);
    expect(s.status().eventPlane).toBe("zmq");
    const tokens = prompt(8);
    await b.cache(tokens, 5_000n);
    await waitFor(async () => (await probe(s, tokens)).overlap === 8, "worker 142's blocks over ZeroMQ");
    expect((await probe(s, tokens)).workerId).toBe(142n);
  });

  it("with the zmq plane, is ready only once the blocks the workers' replay sockets hold are in its index", async () => {
    const ns = freshNamespace();
    const w = await worker(151n, ns, { bridge: false });
    await worker(152n, ns, { bridge: false });
    const tokens = prompt(9);
    await w.cache(tokens, 3_000n); // before the router starts: only the worker's replay socket still holds it
    const s = await service(ns, "zmq");
    await s.whenReady(20_000);
    expect(await probe(s, tokens)).toMatchObject({ workerId: 151n, overlap: 8 });
  });
});
