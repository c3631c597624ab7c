import { EngineEventSource } from "@dynamo/engine-sim";
import { NatsServer, freePortRun, waitFor } from "@dynamo/testkit";
import { RouterEvents, type RouterEvent } from "@dynamo/kv-indexer";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  KvEventBridge,
  KvEventPublisher,
  KvEventSubscriber,
  ZmqEventPublisher,
  type RecoveryPolicy,
} from "../src/index.js";
import {
  BLOCK_SIZE,
  ReferenceIndex,
  SimulatedWorker,
  canonicalState,
  connectNats,
  freshNamespace,
  quiet,
} from "./support/pipeline.js";

let server: NatsServer;
beforeAll(async () => {
  server = await NatsServer.start({ jetstream: false });
});
afterAll(async () => {
  await server.dispose();
});

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function nats(): Promise<NatsConnection> {
  const nc = await connectNats(server);
  cleanups.push(() => nc.close());
  return nc;
}

async function subscriber(ns: string, recovery: Partial<RecoveryPolicy>): Promise<KvEventSubscriber> {
  const s = await KvEventSubscriber.start({
    nc: await nats(),
    namespace: ns,
    component: "backend",
    recovery,
    log: quiet,
  });
  cleanups.push(() => s.close());
  return s;
}

const W = { workerId: 40n, dpRank: 0 };
const store = (id: number, parent: bigint | null, block: bigint): RouterEvent =>
  RouterEvents.stored(W, BigInt(id), parent, [{ blockHash: block, tokensHash: block + 1000n }]);

describe("KvEventSubscriber recovery fallbacks (no bridge answering)", () => {
  it("clears the rank and re-warms from the held events when every attempt fails", async () => {
    const ns = freshNamespace();
    const r = await subscriber(ns, { maxRetries: 1, initialBackoffMs: 10, attemptTimeoutMs: 300 });
    const pub = new KvEventPublisher(await nats(), ns, "backend");
    pub.publish(store(0, null, 1n));
    pub.publish(store(1, 1n, 2n));
    pub.publish(store(5, null, 9n)); // 2..4 lost
    pub.publish(store(6, 9n, 10n));
    await waitFor(
      () => r.stats.recoveryFailures === 1 && r.recovering === 0 && r.index.lastEventId(40n, 0) === 6n,
      "the fallback",
    );
    expect(r.stats.gaps).toBe(1);
    expect(canonicalState(r.index)).toEqual([`40/0 - 9 1009`, `40/0 9 10 1010`]);
  });

  it("treats a cleared event as a barrier that abandons the running recovery", async () => {
    const ns = freshNamespace();
    const r = await subscriber(ns, { maxRetries: 8, initialBackoffMs: 5_000, attemptTimeoutMs: 300 });
    const pub = new KvEventPublisher(await nats(), ns, "backend");
    pub.publish(store(0, null, 1n));
    pub.publish(store(3, null, 4n)); // 1..2 lost: recovery starts, then waits 5 s before retrying
    pub.publish(store(4, 4n, 5n)); // held
    await waitFor(() => r.recovering === 1, "the recovery to start");
    pub.publish(RouterEvents.cleared(W, 5n));
    pub.publish(store(6, null, 7n));
    await waitFor(() => r.index.lastEventId(40n, 0) === 6n, "events after the barrier");
    expect(r.recovering).toBe(0);
    expect(canonicalState(r.index)).toEqual([`40/0 - 7 1007`]);
    expect(r.stats.recoveryFailures).toBe(0);
  });

  it("counts malformed router events and drops events of removed workers until they are synced again", async () => {
    const ns = freshNamespace();
    const r = await subscriber(ns, { maxRetries: 0, attemptTimeoutMs: 300 });
    r.receive("[]");
    r.receive('{"worker_id": -1, "event": {"event_id": 0, "data": "cleared"}}');
    expect(r.stats.malformed).toBe(2);
    r.handle(store(0, null, 1n));
    r.removeWorker(40n);
    r.handle(store(1, 1n, 2n));
    expect(r.stats.droppedFromRemovedWorkers).toBe(1);
    expect(r.index.size).toBe(0);
    await r.syncWorker(40n, 0); // nobody answers: the rank starts empty but is accepted again
    r.handle(store(0, null, 3n));
    expect(canonicalState(r.index)).toEqual([`40/0 - 3 1003`]);
  });
});

describe("multi-rank workers and discovery sync", () => {
  it("bridges every DP rank of a worker and restores each rank from its own dump", async () => {
    const ns = freshNamespace();
    const base = await freePortRun(2);
    const replayBase = await freePortRun(2);
    const worker = {
      workerId: 41n,
      endpoint: `tcp://127.0.0.1:${base}`,
      replayEndpoint: `tcp://127.0.0.1:${replayBase}`,
      dpRanks: [0, 1],
    };
    const pubs = await Promise.all(
      [0, 1].map((dpRank) =>
        ZmqEventPublisher.open({
          endpoint: worker.endpoint,
          replayEndpoint: worker.replayEndpoint,
          dpRank,
          bind: true,
        }),
      ),
    );
    cleanups.push(async () => Promise.all(pubs.map((p) => p.close())));
    const bridge = await KvEventBridge.start({
      nc: await nats(),
      namespace: ns,
      component: "backend",
      blockSize: BLOCK_SIZE,
      worker,
      log: quiet,
    });
    cleanups.push(() => bridge.close());
    const sources = [0, 1].map(
      (dpRank) =>
        new EngineEventSource({
          blockSize: BLOCK_SIZE,
          numGpuBlocks: 128,
          seed: 10 + dpRank,
          dataParallelRank: dpRank,
        }),
    );
    const references = [new ReferenceIndex(bridge.firstEventId), new ReferenceIndex(bridge.firstEventId)];
    for (let i = 0; i < 60; i++) {
      for (const dpRank of [0, 1]) {
        const batch = sources[dpRank]!.nextBatch();
        references[dpRank]!.feedRank(41n, dpRank, batch);
        await pubs[dpRank]!.publish(batch);
      }
    }
    await waitFor(
      () => [0, 1].every((rank) => bridge.lastEventId(rank) === references[rank]!.index.lastEventId(41n, rank)),
      "the bridge to see both ranks",
    );
    const r = await subscriber(ns, { attemptTimeoutMs: 2_000 });
    await Promise.all([r.syncWorker(41n, 0), r.syncWorker(41n, 1)]);
    expect(r.stats.recoveredFromDump).toBe(2);
    const expected = [...canonicalState(references[0]!.index), ...canonicalState(references[1]!.index)].sort();
    expect(canonicalState(r.index)).toEqual(expected);
    expect(expected.some((line) => line.startsWith("41/1 "))).toBe(true);
  });
});

it("a simulated worker's bridge answers queries for the rank it serves", async () => {
  const ns = freshNamespace();
  const w = await SimulatedWorker.start(server, ns, 42n);
  cleanups.push(() => w.close());
  await w.publishEvents(12);
  await waitFor(() => w.bridge.lastEventId(0) === w.reference.lastEventId(42n), "the bridge");
  const r = await subscriber(ns, { attemptTimeoutMs: 2_000 });
  await r.syncWorker(42n, 0);
  expect(canonicalState(r.index)).toEqual(canonicalState(w.reference.index));
  expect(w.bridge.stats.answered.tree_dump).toBe(1);
});

it("keeps lower storage tiers in their own indexes without breaking the device index's event ids", async () => {
  const ns = freshNamespace();
  const r = await subscriber(ns, { maxRetries: 0 });
  r.handle(store(0, null, 1n));
  r.handle(RouterEvents.stored(W, 1n, null, [{ blockHash: 50n, tokensHash: 51n }], "host_pinned"));
  r.handle(store(2, 1n, 2n));
  expect(r.stats.gaps).toBe(0);
  expect(canonicalState(r.index)).toEqual([`40/0 - 1 1001`, `40/0 1 2 1002`]);
  expect(canonicalState(r.index.tier("host_pinned")!)).toEqual([`40/0 - 50 51`]);
  r.handle(RouterEvents.cleared(W, 3n));
  expect(r.index.size + r.index.tier("host_pinned")!.size).toBe(0);
});
