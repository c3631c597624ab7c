import { EngineEventSource } from "@dynamo/engine-sim";
import { RadixIndex, type RouterEvent } from "@dynamo/kv-indexer";
import {
  KvEventBridge,
  KvEventPublisher,
  KvEventSubscriber,
  VllmEventIngest,
  VllmEventTranslator,
  ZmqEventPublisher,
  connectEventPlane,
  ZmqEventSubscriber,
  decodeVllmEventBatch,
  encodeVllmEventBatch,
  type VllmEncodeOptions,
} from "@dynamo/kv-events";
import { NatsServer, freePort } from "@dynamo/testkit";
import { markdownTable, round, type Bench, type BenchContext, type Chart } from "../framework.js";

const BLOCK_SIZE = 16;
const quiet = (): void => undefined;

interface Workload {
  readonly payloads: Uint8Array[];
  readonly events: number;
  readonly blocks: number;
}

/** Deterministic vLLM batches of one worker rank (a simulated engine under a random workload), pre-encoded. */
function workload(batches: number, encoding: VllmEncodeOptions, seed = 7): Workload {
  const source = new EngineEventSource({ blockSize: BLOCK_SIZE, numGpuBlocks: 4096, seed });
  const payloads: Uint8Array[] = [];
  let events = 0;
  let blocks = 0;
  for (let i = 0; i < batches; i++) {
    const batch = source.nextBatch(i / 100);
    events += batch.events.length;
    for (const e of batch.events) if (e.type !== "AllBlocksCleared") blocks += e.blockHashes.length;
    payloads.push(encodeVllmEventBatch({ ...batch, dataParallelRank: 0 }, encoding));
  }
  return { payloads, events, blocks };
}

interface Throughput {
  eventsPerSec: number;
  blocksPerSec: number;
  seconds: number;
}

function rate(w: Workload, ms: number): Throughput {
  return {
    eventsPerSec: round((w.events / ms) * 1000, 0),
    blocksPerSec: round((w.blocks / ms) * 1000, 0),
    seconds: round(ms / 1000, 3),
  };
}

/** Decode only, decode + translate, decode + translate + apply, all on this thread. */
function singleThread(
  ctx: BenchContext,
  w: Workload,
  label: string,
): Record<"decode" | "translate" | "apply", Throughput> {
  const stages = ["decode", "translate", "apply"] as const;
  const out = {} as Record<(typeof stages)[number], Throughput>;
  // Warm the JIT on this encoding first, so that the order of the runs does not decide the figures.
  const warm = new VllmEventTranslator({ workerId: 1n, dpRank: 0, blockSize: BLOCK_SIZE, log: quiet });
  const warmIndex = new RadixIndex();
  for (const payload of w.payloads.slice(0, 3_000)) for (const e of warm.translatePayload(payload)) warmIndex.apply(e);
  for (const stage of stages) {
    const translator = new VllmEventTranslator({ workerId: 1n, dpRank: 0, blockSize: BLOCK_SIZE, log: quiet });
    const index = new RadixIndex();
    let sink = 0;
    const started = performance.now();
    for (let i = 0; i < w.payloads.length; i++) {
      const payload = w.payloads[i]!;
      if (stage === "decode") sink += decodeVllmEventBatch(payload).events.length;
      else {
        const events = translator.translatePayload(payload);
        if (stage === "apply") for (const e of events) index.apply(e);
        sink += events.length;
      }
      if ((i & 1023) === 0) ctx.progress.update(`${label} ${stage}`, i, w.payloads.length);
    }
    out[stage] = rate(w, performance.now() - started);
    if (sink !== w.events) throw new Error(`${stage}: ${sink} events out of ${w.events}`);
  }
  return out;
}

const yieldToLoop = () => new Promise((resolve) => setImmediate(resolve));

/** Publishes every payload on a PUB socket, in slices so the consumer in this process gets turns. */
async function publishAll(pub: ZmqEventPublisher, w: Workload, ctx: BenchContext, phase: string): Promise<void> {
  for (let i = 0; i < w.payloads.length; i++) {
    void pub.publishPayload(w.payloads[i]!);
    if ((i & 63) === 63) {
      await yieldToLoop();
      ctx.progress.update(phase, i, w.payloads.length);
    }
  }
}

async function waitUntil(condition: () => boolean, what: string, timeoutMs = 300_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** vLLM PUB → SUB on loopback → decode → translate → apply. */
async function throughZmq(ctx: BenchContext, w: Workload): Promise<Throughput> {
  const endpoint = `tcp://127.0.0.1:${await freePort()}`;
  const replayEndpoint = `tcp://127.0.0.1:${await freePort()}`;
  const pub = await ZmqEventPublisher.open({ endpoint, replayEndpoint, bind: true, bufferSteps: w.payloads.length });
  const index = new RadixIndex();
  let applied = 0;
  const ingest = new VllmEventIngest({ blockSize: BLOCK_SIZE, log: quiet }, (e: RouterEvent) => {
    index.apply(e);
    applied++;
  });
  const sub = new ZmqEventSubscriber(ingest, { log: quiet });
  await sub.addWorker({ workerId: 1n, endpoint, replayEndpoint });
  // Let the subscription reach the publisher (anything earlier would come through replay, which is not what we measure).
  await new Promise((resolve) => setTimeout(resolve, 300));
  const started = performance.now();
  await publishAll(pub, w, ctx, "zmq publish");
  await waitUntil(() => applied >= w.events, "the ZeroMQ consumer");
  const ms = performance.now() - started;
  await sub.close();
  await pub.close();
  return rate(w, ms);
}

/** vLLM PUB → bridge (decode, translate, own index, NATS publish) → NATS → router subscriber → index. */
async function throughNats(ctx: BenchContext, w: Workload, server: NatsServer): Promise<Throughput> {
  const endpoint = `tcp://127.0.0.1:${await freePort()}`;
  const replayEndpoint = `tcp://127.0.0.1:${await freePort()}`;
  const pub = await ZmqEventPublisher.open({ endpoint, replayEndpoint, bind: true, bufferSteps: w.payloads.length });
  const routerNc = await connectEventPlane(server.url);
  const bridgeNc = await connectEventPlane(server.url);
  const router = await KvEventSubscriber.start({ nc: routerNc, namespace: "bench", component: "backend", log: quiet });
  const bridge = await KvEventBridge.start({
    nc: bridgeNc,
    namespace: "bench",
    component: "backend",
    blockSize: BLOCK_SIZE,
    worker: { workerId: 1n, endpoint, replayEndpoint },
    log: quiet,
  });
  await new Promise((resolve) => setTimeout(resolve, 300));
  // The bridge opens the rank's stream with a `cleared` event at its first id; the workload's events follow.
  const last = bridge.firstEventId + BigInt(w.events);
  const started = performance.now();
  await publishAll(pub, w, ctx, "nats publish");
  await waitUntil(() => router.index.lastEventId(1n, 0) === last && router.recovering === 0, "the router behind NATS");
  const ms = performance.now() - started;
  await bridge.close();
  await router.close();
  await Promise.all([bridgeNc.close(), routerNc.close()]);
  await pub.close();
  return rate(w, ms);
}

/** Router events already translated → KvEventPublisher → nats-server → router subscriber → index (the NATS plane alone). */
async function natsPlaneOnly(ctx: BenchContext, w: Workload, server: NatsServer): Promise<Throughput> {
  const translator = new VllmEventTranslator({ workerId: 2n, dpRank: 0, blockSize: BLOCK_SIZE, log: quiet });
  const events = w.payloads.flatMap((p) => translator.translatePayload(p));
  const routerNc = await connectEventPlane(server.url);
  const publisherNc = await connectEventPlane(server.url);
  const router = await KvEventSubscriber.start({
    nc: routerNc,
    namespace: "bench-plane",
    component: "backend",
    log: quiet,
  });
  const publisher = new KvEventPublisher(publisherNc, "bench-plane", "backend");
  const last = events.at(-1)!.eventId;
  const started = performance.now();
  for (let i = 0; i < events.length; i++) {
    publisher.publish(events[i]!);
    if ((i & 511) === 511) {
      await yieldToLoop();
      ctx.progress.update("nats plane publish", i, events.length);
    }
  }
  await waitUntil(() => router.index.lastEventId(2n, 0) === last && router.recovering === 0, "the router subscriber");
  const ms = performance.now() - started;
  await router.close();
  await Promise.all([publisherNc.close(), routerNc.close()]);
  return rate(w, ms);
}

export const bench: Bench = {
  name: "events",
  description:
    "vLLM KV-event ingestion: msgpack decode, translation into router events (router hashes recomputed from token ids) and " +
    "application to the radix index on one thread; then end to end through ZeroMQ on loopback, and through the NATS bridge " +
    `(ZeroMQ → bridge → nats-server → router; \`natsEventsPerSec\`), and the NATS plane alone (router events published as JSON → router). A simulated engine (\`@dynamo/engine-sim\`, 4,096 blocks, random prompts over shared prefixes) publishes the batches, one per scheduling step; block size ${BLOCK_SIZE}.`,
  async run(ctx) {
    const batches = Number(ctx.args.find((a) => a.startsWith("--batches="))?.slice("--batches=".length) ?? 25_000);
    ctx.progress.note(`encoding ${batches} batches in both encodings`);
    const legacy = workload(batches, { eventEncoding: "array", batchEncoding: "array" });
    const mapped = workload(batches, { eventEncoding: "map", batchEncoding: "array" });
    const arrayStages = singleThread(ctx, legacy, "array");
    const mapStages = singleThread(ctx, mapped, "map");
    const zmq = await throughZmq(ctx, legacy);
    const server = await NatsServer.start({ jetstream: false });
    let nats: Throughput;
    let plane: Throughput;
    try {
      plane = await natsPlaneOnly(ctx, legacy, server);
      nats = await throughNats(ctx, legacy, server);
    } finally {
      await server.dispose();
    }
    const rows: Array<[string, Throughput]> = [
      ["decode (array encoding)", arrayStages.decode],
      ["decode + translate (array)", arrayStages.translate],
      ["decode + translate + apply (array)", arrayStages.apply],
      ["decode (map encoding)", mapStages.decode],
      ["decode + translate (map)", mapStages.translate],
      ["decode + translate + apply (map)", mapStages.apply],
      ["ZeroMQ loopback → apply", zmq],
      ["router events → NATS → router apply", plane],
      ["ZeroMQ → bridge → NATS → router apply", nats],
    ];
    const charts: Chart[] = [
      {
        kind: "bar",
        title: "Events per second by path",
        unit: "events/s",
        bars: rows.map(([label, t]) => ({ label, value: t.eventsPerSec })),
      },
      {
        kind: "bar",
        title: "Blocks per second by path",
        unit: "blocks/s",
        bars: rows.map(([label, t]) => ({ label, value: t.blocksPerSec })),
      },
    ];
    const markdown = [
      `${legacy.events.toLocaleString("en-US")} events (${legacy.blocks.toLocaleString("en-US")} blocks) in ${batches.toLocaleString("en-US")} batches per run.`,
      "",
      markdownTable(
        ["Path", "events/s", "blocks/s", "seconds"],
        rows.map(([label, t]) => [label, t.eventsPerSec, t.blocksPerSec, t.seconds]),
      ),
      "",
      "Publisher, consumer, bridge and router share one Node process (and the nats-server the same 2-core machine), so the " +
        "end-to-end figures are lower bounds of what separate processes reach; the machine was shared with other jobs while measuring.",
    ].join("\n");
    return {
      figures: {
        events: legacy.events,
        blocks: legacy.blocks,
        decodeApplyEventsPerSec: arrayStages.apply.eventsPerSec,
        decodeApplyBlocksPerSec: arrayStages.apply.blocksPerSec,
        decodeApplyMapEventsPerSec: mapStages.apply.eventsPerSec,
        decodeOnlyEventsPerSec: arrayStages.decode.eventsPerSec,
        decodeTranslateEventsPerSec: arrayStages.translate.eventsPerSec,
        zmqEventsPerSec: zmq.eventsPerSec,
        zmqBlocksPerSec: zmq.blocksPerSec,
        natsEventsPerSec: nats.eventsPerSec,
        natsBlocksPerSec: nats.blocksPerSec,
        natsPlaneEventsPerSec: plane.eventsPerSec,
      },
      markdown,
      charts,
    };
  },
};
