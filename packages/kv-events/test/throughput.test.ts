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
    const started = performance.now();
    let elapsed = 0;
    while (elapsed < DURATION_MS) {
      // Catch up with the schedule: one batch per millisecond since the start.
      const due = Math.min(DURATION_MS, Math.floor(elapsed)) * (BATCHES_PER_SECOND / 1000) - worker.published;
      if (due > 0) await worker.publish(due);
      await new Promise((resolve) => setTimeout(resolve, 2));
      elapsed = performance.now() - started;
    }
    const missing = (DURATION_MS * BATCHES_PER_SECOND) / 1000 - worker.published;
    if (missing > 0) await worker.publish(missing);
    const sendSeconds = (performance.now() - started) / 1000;
    const events = worker.published * EVENTS_PER_BATCH;
    expect(events).toBe(25_000);
    expect(events / sendSeconds).toBeGreaterThan(9_000);

    await converged(router, worker, 60_000);
    expect(worker.bridge.stats.published).toBe(events);
    expect(canonicalState(router.index)).toEqual(canonicalState(worker.reference.index));
    expect(router.index.size).toBe(worker.reference.index.size);
    expect(router.index.size).toBeGreaterThan(1_000);
  } finally {
    await worker.close();
    await router.close();
    await nc.close();
  }
});
