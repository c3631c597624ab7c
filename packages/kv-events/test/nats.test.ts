import { EngineEventSource } from "@dynamo/engine-sim";
import { NatsServer, waitFor } from "@dynamo/testkit";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ZmqEventPublisher, kvEventSubject, workerQuerySubject } from "../src/index.js";
import { TcpProxy } from "./support/tcp-proxy.js";
import {
  BLOCK_SIZE,
  ReferenceIndex,
  SimulatedWorker,
  canonicalState,
  converged,
  freshNamespace,
  startRouter,
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

async function worker(namespace: string, workerId: bigint, seed = 1) {
  const w = await SimulatedWorker.start(server, namespace, workerId, seed);
  cleanups.push(() => w.close());
  return w;
}

async function router(namespace: string) {
  const r = await startRouter(server, namespace);
  cleanups.push(
    () => r.nc.close(),
    () => r.router.close(),
  );
  return r.router;
}

/** A router whose NATS connection goes through a forwarder the test can cut and restore. */
async function routerBehindProxy(namespace: string) {
  const proxy = await TcpProxy.start(server.port);
  cleanups.push(() => proxy.close());
  const { router: r, nc } = await startRouter(server, namespace, undefined, `nats://${proxy.url}`);
  cleanups.push(
    () => nc.close(),
    () => r.close(),
  );
  return { proxy, router: r, nc };
}

function bridgeCaughtUp(w: SimulatedWorker): Promise<void> {
  return waitFor(
    () => w.bridge.lastEventId(0) === w.reference.lastEventId(w.workerId),
    "the bridge to see every batch",
  );
}

describe("NATS event plane", () => {
  it("carries a worker's vLLM stream into the router's index", async () => {
    const ns = freshNamespace();
    const r = await router(ns);
    const w = await worker(ns, 11n);
    await w.publishEvents(800);
    await converged(r, w);
    expect(canonicalState(r.index)).toEqual(canonicalState(w.reference.index));
    expect(r.index.size).toBeGreaterThan(100);
    expect(r.stats.malformed).toBe(0);
  });

  it("lets a late router recover from the bridge's buffer, and from its dump once the buffer rolled over", async () => {
    const ns = freshNamespace();
    const w = await worker(ns, 12n);
    await w.publishEvents(200); // still in the 1 024-event buffer
    await bridgeCaughtUp(w);
    const early = await router(ns);
    await w.publishEvents(20);
    await converged(early, w);
    expect(early.stats.recoveredFromEvents).toBe(1);
    expect(canonicalState(early.index)).toEqual(canonicalState(w.reference.index));

    await w.publishEvents(1600); // far beyond the buffer
    await bridgeCaughtUp(w);
    const late = await router(ns);
    await w.publishEvents(20);
    await converged(late, w);
    expect(late.stats.recoveredFromDump).toBe(1);
    expect(canonicalState(late.index)).toEqual(canonicalState(w.reference.index));
  });

  it("recovers the events lost while the NATS server restarted mid-stream, although the worker goes quiet afterwards", async () => {
    const ns = freshNamespace();
    // The router reaches the server through a forwarder, so that its side can be kept down until the bridge,
    // reconnected directly, has published the rest of the stream: those events are lost for sure.
    const { proxy, router: r } = await routerBehindProxy(ns);
    const w = await worker(ns, 13n);
    let running = true;
    const stream = (async () => {
      while (running) {
        await w.publishEvents(8);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    await waitFor(() => w.publishedEvents > 400 && r.stats.received > 200, "traffic before the restart");
    await proxy.cut();
    await server.restart();
    const afterRestart = w.publishedEvents;
    await waitFor(() => w.publishedEvents > afterRestart + 400, "traffic after the restart", 20_000);
    running = false;
    await stream;
    await bridgeCaughtUp(w);
    await w.nc.flush(); // the server has every event the bridge published
    const { received, gaps } = r.stats;
    expect(r.index.lastEventId(13n, 0)).toBeLessThan(w.bridge.lastEventId(0)! - 400n); // at least the 100 batches after the restart are lost
    await proxy.restore(); // the worker stays quiet: only the reconnection can reveal the loss
    await converged(r, w);
    expect(r.stats.received).toBe(received);
    expect(r.stats.gaps).toBe(gaps);
    expect(r.stats.reconnects).toBe(1);
    expect(r.stats.reconnectCatchUps).toBe(1);
    expect(r.stats.recoveredFromEvents).toBeGreaterThanOrEqual(1);
    expect(canonicalState(r.index)).toEqual(canonicalState(w.reference.index));
  });

  it("on every reconnection asks each rank for what came after its last id: nothing, or the dump once the buffer rolled over", async () => {
    const ns = freshNamespace();
    const { proxy, router: r, nc } = await routerBehindProxy(ns);
    const w = await worker(ns, 20n);
    await w.publishEvents(80);
    await converged(r, w);
    await nc.reconnect(); // nothing was lost
    await waitFor(
      () => r.stats.reconnectCatchUps === 1 && r.recovering === 0 && w.bridge.stats.answered.too_new === 1,
      "the catch-up after the reconnection",
    );
    expect(r.stats.recoveredFromEvents + r.stats.recoveredFromDump).toBe(0);
    expect(canonicalState(r.index)).toEqual(canonicalState(w.reference.index));

    await proxy.cut();
    await w.publishEvents(1200); // 1 200 events: more than the bridge's buffer keeps
    await bridgeCaughtUp(w);
    await w.nc.flush();
    await proxy.restore();
    await converged(r, w);
    expect(r.stats).toMatchObject({
      reconnects: 2,
      reconnectCatchUps: 2,
      recoveredFromDump: 1,
      recoveredFromEvents: 0,
    });
    expect(w.bridge.stats.answered.tree_dump).toBe(1);
    expect(canonicalState(r.index)).toEqual(canonicalState(w.reference.index));
  });

  it("clears and re-warms the rank when the vLLM publisher restarts with a new sequence", async () => {
    const ns = freshNamespace();
    const r = await router(ns);
    const w = await worker(ns, 14n);
    await w.publishEvents(120);
    await converged(r, w);
    const lastBeforeRestart = w.bridge.lastEventId(0)!;
    await w.zmq.close();
    w.zmq = await ZmqEventPublisher.open({ ...w.endpoints, bind: true });
    const fresh = new EngineEventSource({ blockSize: BLOCK_SIZE, numGpuBlocks: 256, seed: 99 });
    const afterRestart = new ReferenceIndex();
    // Publish until the subscriber has reconnected and noticed the restart (earlier batches come back through replay).
    await waitFor(
      async () => {
        const batch = fresh.nextBatch();
        afterRestart.feed(w.workerId, batch);
        await w.zmq.publish(batch);
        return w.bridge.zmqStats.publisherRestarts === 1;
      },
      "the restart to be noticed",
      15_000,
      30,
    );
    // Ids go on across the restart: old stream, one `cleared`, then the new stream.
    const expectedLast = lastBeforeRestart + 1n + afterRestart.lastEventId(w.workerId)! + 1n;
    await waitFor(
      () => r.recovering === 0 && r.index.lastEventId(w.workerId, 0) === expectedLast,
      "the new stream to reach the router",
    );
    expect(canonicalState(r.index)).toEqual(canonicalState(afterRestart.index));
    expect(r.index.size).toBeGreaterThan(0);
  });

  it("follows a bridge restarted under the same worker id (the vLLM worker kept running) to the worker's state", async () => {
    const ns = freshNamespace();
    const r = await router(ns);
    const w = await worker(ns, 18n);
    await w.publishEvents(160);
    await converged(r, w);
    const oldLast = w.bridge.lastEventId(0)!;
    await w.restartBridge(() => w.publishEvents(240)); // stores and evictions the router only learns through the new bridge
    expect(w.bridge.firstEventId).toBeGreaterThan(oldLast);
    await w.publishEvents(20);
    await converged(r, w);
    expect(canonicalState(r.index)).toEqual(canonicalState(w.reference.index));
    expect(r.index.size).toBeGreaterThan(100);
    expect(r.stats.gaps).toBe(0); // the new bridge's opening `cleared` was seen live: no recovery needed
  });

  it("drops the old blocks when the whole worker restarts (new vLLM cache, new bridge) under the same worker id", async () => {
    const ns = freshNamespace();
    const r = await router(ns);
    const w = await worker(ns, 19n);
    await w.publishEvents(160);
    await converged(r, w);
    const old = canonicalState(r.index);
    await w.restartWorker(77);
    await w.publishEvents(40);
    await converged(r, w);
    const now = canonicalState(r.index);
    expect(now).toEqual(canonicalState(w.reference.index));
    expect(now.length).toBeGreaterThan(0);
    expect(now.filter((line) => old.includes(line))).toEqual([]);
  });

  it("empties the router's rank on an AllBlocksCleared from the worker, and later stores re-warm it", async () => {
    const ns = freshNamespace();
    const r = await router(ns);
    const w = await worker(ns, 22n);
    await w.publishEvents(120);
    await converged(r, w);
    expect(r.index.size).toBeGreaterThan(50);
    await w.publishBatch(w.source.clearCache(Date.now() / 1000));
    await converged(r, w);
    expect(canonicalState(r.index, 22n)).toEqual([]);
    expect(r.index.size).toBe(0);
    await w.publishEvents(40);
    await converged(r, w);
    expect(r.index.size).toBeGreaterThan(0);
    expect(canonicalState(r.index)).toEqual(canonicalState(w.reference.index));
  });

  it("counts and drops malformed payloads and messages at every stage, and carries on", async () => {
    const ns = freshNamespace();
    const r = await router(ns);
    const w = await worker(ns, 15n);
    await w.publishEvents(40);
    await w.zmq.publishPayload(new Uint8Array([0xc1, 0x00]));
    await w.zmq.publishPayload(Buffer.from("not msgpack at all"));
    await w.publishEvents(40);
    await converged(r, w);
    expect(w.bridge.ingest.issueTotals().malformed_payload).toBe(2);
    expect(canonicalState(r.index)).toEqual(canonicalState(w.reference.index));

    w.nc.publish(kvEventSubject(ns, "backend"), "{ not json");
    w.nc.publish(kvEventSubject(ns, "backend"), '{"worker_id": 1, "event": {"event_id": 0, "data": {"nope": {}}}}');
    w.nc.publish(workerQuerySubject(ns, "backend", 15n, 0), '{"start_event_id": "x"}', { reply: "_INBOX.ignored" });
    await w.nc.flush();
    await waitFor(() => r.stats.malformed === 2 && w.bridge.stats.badQueries === 1, "malformed messages to be counted");
    await w.publishEvents(20);
    await converged(r, w);
    expect(canonicalState(r.index)).toEqual(canonicalState(w.reference.index));
  });

  it("forgets a removed worker even while its events are still in flight", async () => {
    const ns = freshNamespace();
    const r = await router(ns);
    const gone = await worker(ns, 16n, 1);
    const stays = await worker(ns, 17n, 2);
    let running = true;
    const streams = [gone, stays].map(async (w) => {
      while (running) {
        await w.publishEvents(16);
        await new Promise((resolve) => setImmediate(resolve));
      }
    });
    await waitFor(
      () => r.index.lastEventId(16n, 0) !== undefined && gone.publishedEvents > 200,
      "traffic from both workers",
    );
    r.removeWorker(16n);
    const removedAt = r.stats.droppedFromRemovedWorkers;
    await waitFor(() => r.stats.droppedFromRemovedWorkers > removedAt + 20, "in-flight events of the removed worker");
    running = false;
    await Promise.all(streams);
    await converged(r, stays);
    expect(canonicalState(r.index, 16n)).toEqual([]);
    expect(r.index.lastEventId(16n, 0)).toBeUndefined();
    expect(canonicalState(r.index)).toEqual(canonicalState(stays.reference.index));
  });
});
