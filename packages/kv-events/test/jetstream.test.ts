import { NatsServer, waitFor } from "@dynamo/testkit";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, expect, it } from "vitest";
import { kvEventStreamName } from "../src/index.js";
import { SimulatedWorker, canonicalState, converged, freshNamespace, startRouter } from "./support/pipeline.js";

let server: NatsServer;
beforeAll(async () => {
  server = await NatsServer.start({ jetstream: true });
});
afterAll(async () => {
  await server.dispose();
});

it("durable mode: a router replica that joins late rebuilds its index from the stream, without recovery queries", async () => {
  const ns = freshNamespace();
  const worker = await SimulatedWorker.start(server, ns, 31n, 3, { durable: true });
  const { router, nc } = await startRouter(server, ns, "router-a");
  try {
    await worker.publishEvents(400);
    await waitFor(
      () => worker.bridge.lastEventId(0) === worker.reference.lastEventId(31n),
      "the bridge to see every batch",
    );
    const late = await startRouter(server, ns, "router-b");
    try {
      await worker.publishEvents(20);
      await converged(router, worker);
      await converged(late.router, worker);
      for (const r of [router, late.router]) {
        expect(canonicalState(r.index)).toEqual(canonicalState(worker.reference.index));
        expect(r.stats.recoveredFromEvents + r.stats.recoveredFromDump).toBe(0);
        expect(r.stats.received).toBe(worker.bridge.stats.published);
      }
      const jsm = await jetstreamManager(nc);
      const consumers = (await jsm.consumers.list(kvEventStreamName(ns, "backend")).next()).map((c) => c.name).sort();
      expect(consumers).toEqual(["router-a", "router-b"]);
    } finally {
      await late.router.close();
      await late.nc.close();
    }
  } finally {
    await worker.close();
    await router.close();
    await nc.close();
  }
});
