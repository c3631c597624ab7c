import { NatsServer } from "@dynamo/testkit";
import { afterAll, beforeAll, expect, it } from "vitest";
import { SimulatedWorker, canonicalState, converged, freshNamespace, startRouter } from "./support/pipeline.js";

let server: NatsServer;
beforeAll(async () => {
  server = await NatsServer.start({ jetstream: false });
});
afterAll(async () => {
  await server.dispose();
});

const EVENTS_PER_BATCH = 10;
const BATCHES_PER_SECOND = 1_000; // 10 000 events/s
const DURATION_MS = 2_500;

it("sustains 10 000 events/s through the bridge, ending with the router's index equal to a directly fed one", async () => {
  const ns = freshNamespace();
  const { router, nc } = await startRouter(server, ns);
  const worker = await SimulatedWorker.start(server, ns, 21n, 5, { eventsPerBatch: EVENTS_PER_BATCH, capacityBlocks: 2_048 });
  try {
    // Generate, encode and feed the reference up front: during the run this process only sends, bridges and routes.
    const payloads = worker.prepare((DURATION_MS * BATCHES_PER_SECOND) / 1000);
    const started = performance.now();
    let elapsed = 0;
    while (worker.published < payloads.length) {
      // Keep to the schedule (one batch per millisecond since the start), catching up when behind.
      const due = Math.min(payloads.length, Math.floor(elapsed * (BATCHES_PER_SECOND / 1000)));
      if (due > worker.published) await worker.send(payloads.slice(worker.published, due));
      await new Promise((resolve) => setTimeout(resolve, 2));
      elapsed = performance.now() - started;
    }
    const sendSeconds = (performance.now() - started) / 1000;
    const events = worker.published * EVENTS_PER_BATCH;
    expect(events).toBe(25_000);
    // The schedule offers 10 000 events/s; sender, bridge and router share this thread, so a pipeline that
    // could not keep up would hold the sender back. The margin is for a machine busy with other work.
    expect(events / sendSeconds).toBeGreaterThan(7_000);

    await converged(router, worker, 60_000);
    expect(worker.bridge.stats.published).toBe(events + 1); // and the opening `cleared`
    expect(canonicalState(router.index)).toEqual(canonicalState(worker.reference.index));
    expect(router.index.size).toBe(worker.reference.index.size);
    expect(router.index.size).toBeGreaterThan(1_000);
  } finally {
    await worker.close();
    await router.close();
    await nc.close();
  }
});
