import { EngineEventSource } from "@dynamo/engine-sim";
import { freePort, freePortRun, waitFor } from "@dynamo/testkit";
import { RadixIndex, type WorkerRank } from "@dynamo/kv-indexer";
import { afterEach, describe, expect, it } from "vitest";
import {
  VllmEventIngest,
  VllmEventTranslator,
  ZmqEventPublisher,
  ZmqEventSubscriber,
  encodeSeq,
  encodeVllmEventBatch,
  endpointForRank,
  requestReplay,
  type ZmqBatchHandler,
  type ZmqBatchInfo,
  type VllmEventBatch,
  type ZmqResetReason,
} from "../src/index.js";
import { TcpProxy } from "./support/tcp-proxy.js";
import { WirePublisher } from "./support/wire-publisher.js";

type Delivery =
  | { kind: "batch"; rank: WorkerRank; seq: bigint; replayed: boolean; payload: Uint8Array }
  | { kind: "reset"; rank: WorkerRank; reason: ZmqResetReason };

class Recorder implements ZmqBatchHandler {
  readonly log: Delivery[] = [];
  onBatch(rank: WorkerRank, payload: Uint8Array, info: ZmqBatchInfo): void {
    this.log.push({ kind: "batch", rank, seq: info.seq, replayed: info.replayed, payload });
  }
  onReset(rank: WorkerRank, reason: ZmqResetReason): void {
    this.log.push({ kind: "reset", rank, reason });
  }
  seqs(): Array<bigint | string> {
    return this.log.map((d) => (d.kind === "batch" ? d.seq : `reset:${d.reason}`));
  }
}

const payload = (n: number) =>
  encodeVllmEventBatch({ ts: n, dataParallelRank: 0, events: [{ type: "BlockRemoved", blockHashes: [BigInt(n)] }] });
const quiet = () => undefined;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function wire(shape: "with-topic" | "legacy" = "with-topic") {
  const pub = await WirePublisher.start(shape);
  const rec = new Recorder();
  const sub = new ZmqEventSubscriber(rec, { log: quiet, replayTimeoutMs: 1_000 });
  cleanups.push(
    () => pub.close(),
    () => sub.close(),
  );
  await sub.addWorker({ workerId: 3n, endpoint: pub.endpoint, replayEndpoint: pub.replayEndpoint });
  await pub.waitForSubscriber();
  await waitFor(() => pub.replayRequests.length === 1, "the replay request sent on connect");
  return { pub, rec, sub };
}

describe("endpointForRank", () => {
  it("offsets TCP ports and suffixes inproc endpoints", () => {
    expect(endpointForRank("tcp://10.0.0.7:5557", 0)).toBe("tcp://10.0.0.7:5557");
    expect(endpointForRank("tcp://10.0.0.7:5557", 3)).toBe("tcp://10.0.0.7:5560");
    expect(endpointForRank("inproc://events", 2)).toBe("inproc://events_dp2");
    expect(() => endpointForRank("ipc:///tmp/x", 1)).toThrow(/rank 1/);
  });
});

describe("ZmqEventSubscriber", () => {
  it("delivers batches in order with topic and sequence", async () => {
    const { pub, rec, sub } = await wire();
    for (let i = 0; i < 5; i++) await pub.send(BigInt(i), payload(i));
    await waitFor(() => rec.log.length === 5, "5 batches");
    expect(rec.seqs()).toEqual([0n, 1n, 2n, 3n, 4n]);
    expect(rec.log[0]).toMatchObject({ rank: { workerId: 3n, dpRank: 0 }, replayed: false });
    expect(sub.stats).toMatchObject({ messages: 5, gaps: 0, malformedFrames: 0 });
    expect(pub.replayRequests).toEqual([0n]); // on connect, for history sent before the subscription arrived
  });

  for (const shape of ["with-topic", "legacy"] as const) {
    it(`replays dropped messages from the replay socket (${shape} replies)`, async () => {
      const { pub, rec, sub } = await wire(shape);
      await pub.send(0n, payload(0));
      await pub.send(1n, payload(1), { live: false });
      await pub.send(2n, payload(2), { live: false });
      await pub.send(3n, payload(3));
      await pub.send(4n, payload(4));
      await waitFor(() => rec.log.length === 5, "5 batches");
      expect(rec.seqs()).toEqual([0n, 1n, 2n, 3n, 4n]);
      expect(rec.log.map((d) => d.kind === "batch" && d.replayed)).toEqual([false, true, true, false, false]);
      expect(Buffer.from((rec.log[1] as { payload: Uint8Array }).payload)).toEqual(Buffer.from(payload(1)));
      expect(pub.replayRequests).toEqual([0n, 0n]); // the gap is replayed from the last batch held, to check it is the same stream
      expect(sub.stats).toMatchObject({ gaps: 1, replayedBatches: 2, unrecoveredGaps: 0 });
    });
  }

  it("resets the rank when replay no longer covers the gap, then goes on", async () => {
    const { pub, rec, sub } = await wire();
    await pub.send(0n, payload(0));
    pub.replayable.clear(); // the replay buffer rolled over: 1..2 are gone
    await pub.send(3n, payload(3), { live: false });
    await pub.send(4n, payload(4));
    await pub.send(5n, payload(5));
    await waitFor(() => rec.log.length === 5, "deliveries");
    expect(rec.seqs()).toEqual([0n, "reset:gap_not_recovered", 3n, 4n, 5n]);
    expect(sub.stats.unrecoveredGaps).toBe(1);
  });

  it("resets the rank on a gap when the worker has no replay socket", async () => {
    const pub = await WirePublisher.start();
    const rec = new Recorder();
    const sub = new ZmqEventSubscriber(rec, { log: quiet });
    cleanups.push(
      () => pub.close(),
      () => sub.close(),
    );
    await sub.addWorker({ workerId: 3n, endpoint: pub.endpoint });
    await pub.waitForSubscriber();
    await pub.send(0n, payload(0));
    await pub.send(2n, payload(2));
    await waitFor(() => rec.log.length === 3, "deliveries");
    expect(rec.seqs()).toEqual([0n, "reset:gap_not_recovered", 2n]);
  });

  it("replays from 0 when the first batch seen has seq > 0", async () => {
    const { pub, rec } = await wire();
    await pub.send(0n, payload(0), { live: false });
    await pub.send(1n, payload(1), { live: false });
    await pub.send(2n, payload(2));
    await waitFor(() => rec.log.length === 3, "deliveries");
    expect(rec.seqs()).toEqual([0n, 1n, 2n]);
    expect(pub.replayRequests).toEqual([0n, 0n]);
  });

  it("drops malformed frames, keeps going, and names the worker in the log", async () => {
    const pub = await WirePublisher.start();
    const rec = new Recorder();
    const lines: string[] = [];
    const sub = new ZmqEventSubscriber(rec, { log: (l) => lines.push(l) });
    cleanups.push(
      () => pub.close(),
      () => sub.close(),
    );
    await sub.addWorker({ workerId: 42n, endpoint: pub.endpoint, replayEndpoint: pub.replayEndpoint });
    await pub.waitForSubscriber();
    await pub.send(0n, payload(0));
    await pub.sendFrames(["topic", encodeSeq(1n)]);
    await pub.sendFrames(["topic", encodeSeq(1n), payload(1), "extra"]);
    await pub.sendFrames(["topic", new Uint8Array([0, 1]), payload(1)]);
    await pub.sendFrames(["only-one-frame"]);
    await pub.send(1n, payload(1));
    await waitFor(() => rec.log.length === 2, "deliveries");
    expect(rec.seqs()).toEqual([0n, 1n]);
    expect(sub.stats.malformedFrames).toBe(4);
    expect(lines[0]).toMatch(/worker 42 dp_rank 0/);
  });

  it("subscribes to every DP rank at port + rank", async () => {
    const base = await freePortRun(12);
    const pubs = await Promise.all(
      [0, 1].map((dpRank) =>
        ZmqEventPublisher.open({
          endpoint: `tcp://127.0.0.1:${base}`,
          replayEndpoint: `tcp://127.0.0.1:${base + 10}`,
          dpRank,
          bind: true,
        }),
      ),
    );
    const rec = new Recorder();
    const sub = new ZmqEventSubscriber(rec, { log: quiet });
    cleanups.push(
      async () => void (await Promise.all(pubs.map((p) => p.close()))),
      () => sub.close(),
    );
    await sub.addWorker({
      workerId: 9n,
      endpoint: `tcp://127.0.0.1:${base}`,
      replayEndpoint: `tcp://127.0.0.1:${base + 10}`,
      dpRanks: [0, 1],
    });
    await pubs[1]!.publishPayload(payload(10));
    await pubs[0]!.publishPayload(payload(0));
    await waitFor(() => rec.log.length === 2, "one batch per rank (live or replayed)");
    const byRank = new Map(rec.log.map((d) => [d.rank.dpRank, d]));
    expect(byRank.get(0)).toMatchObject({ seq: 0n });
    expect(byRank.get(1)).toMatchObject({ seq: 0n });
  });
});

describe("ZmqEventSubscriber across a reconnection", () => {
  it("is synced with a worker once the history its replay socket held at the first connection is delivered", async () => {
    const pub = await WirePublisher.start();
    for (let i = 0; i < 3; i++) await pub.send(BigInt(i), payload(i)); // no subscriber yet: kept for replay only
    const rec = new Recorder();
    const sub = new ZmqEventSubscriber(rec, { log: quiet, replayTimeoutMs: 1_000 });
    cleanups.push(
      () => pub.close(),
      () => sub.close(),
    );
    await sub.addWorker({ workerId: 3n, endpoint: pub.endpoint, replayEndpoint: pub.replayEndpoint });
    await sub.synced(3n);
    expect(rec.seqs()).toEqual([0n, 1n, 2n]);
    expect(rec.log.every((d) => d.kind === "batch" && d.replayed)).toBe(true);
  });

  it("stops waiting for a publisher it cannot reach after syncTimeoutMs, and at once without a replay socket", async () => {
    const rec = new Recorder();
    const sub = new ZmqEventSubscriber(rec, { log: quiet, syncTimeoutMs: 300 });
    cleanups.push(() => sub.close());
    const [pubPort, replayPort] = [await freePort(), await freePort()];
    await sub.addWorker({
      workerId: 5n,
      endpoint: `tcp://127.0.0.1:${pubPort}`,
      replayEndpoint: `tcp://127.0.0.1:${replayPort}`,
    });
    const started = Date.now();
    await sub.synced(5n);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    await sub.addWorker({ workerId: 6n, endpoint: `tcp://127.0.0.1:${pubPort}` });
    const again = Date.now();
    await sub.synced(6n);
    expect(Date.now() - again).toBeLessThan(250);
    expect(rec.log).toEqual([]);
  });

  /** A publisher whose PUB (and, optionally, replay) socket the subscriber reaches through a proxy that can cut it off. */
  async function behindProxy(options: { proxyReplay?: boolean; replayTimeoutMs?: number } = {}) {
    const pub = await WirePublisher.start();
    const pubProxy = await TcpProxy.start(pub.port);
    const replayProxy = options.proxyReplay ? await TcpProxy.start(pub.replayPort) : undefined;
    const rec = new Recorder();
    const sub = new ZmqEventSubscriber(rec, {
      log: quiet,
      reconnectIntervalMs: 20,
      replayTimeoutMs: options.replayTimeoutMs ?? 1_000,
    });
    cleanups.push(
      () => pub.close(),
      () => pubProxy.close(),
      async () => replayProxy?.close(),
      () => sub.close(),
    );
    const replayEndpoint = replayProxy ? `tcp://${replayProxy.url}` : pub.replayEndpoint;
    await sub.addWorker({ workerId: 3n, endpoint: `tcp://${pubProxy.url}`, replayEndpoint });
    await pub.waitForSubscriber();
    await waitFor(() => pub.replayRequests.length === 1, "the replay request sent on connect");
    for (let i = 0; i < 3; i++) await pub.send(BigInt(i), payload(i));
    await waitFor(() => rec.log.length === 3, "batches 0..2");
    return { pub, pubProxy, replayProxy, rec, sub };
  }

  it("replays what was published while disconnected from a publisher that did not restart, even when it then goes quiet", async () => {
    const { pub, pubProxy, rec, sub } = await behindProxy();
    await pubProxy.cut();
    await waitFor(() => pub.unsubscriptions === 1, "the publisher to see the subscriber go");
    await pub.send(3n, payload(3)); // no subscriber: dropped by the PUB, kept for replay
    await pub.send(4n, payload(4));
    await pubProxy.restore();
    await waitFor(() => rec.log.length === 5, "the batches published during the outage");
    expect(rec.seqs()).toEqual([0n, 1n, 2n, 3n, 4n]);
    expect(rec.log.slice(3).map((d) => d.kind === "batch" && d.replayed)).toEqual([true, true]);
    expect(pub.replayRequests).toEqual([0n, 2n]);
    await pub.waitForSubscriber(2);
    await pub.send(5n, payload(5));
    await waitFor(() => rec.log.length === 6, "the next live batch");
    expect(rec.seqs()).toEqual([0n, 1n, 2n, 3n, 4n, 5n]);
    expect(sub.stats).toMatchObject({ publisherRestarts: 0, unrecoveredGaps: 0, replayedBatches: 2 });
  });

  it("takes a forward jump after a reconnection for lost messages, not a restart, when the publisher's replay holds the same last batch", async () => {
    const { pub, pubProxy, replayProxy, rec, sub } = await behindProxy({ proxyReplay: true, replayTimeoutMs: 300 });
    await pubProxy.cut();
    await waitFor(() => pub.unsubscriptions === 1, "the publisher to see the subscriber go");
    replayProxy!.hold(); // the replay asked for on reconnection hangs: only the next live batch can reveal the loss
    await pub.send(3n, payload(3));
    await pub.send(4n, payload(4));
    await pubProxy.restore();
    await pub.waitForSubscriber(2);
    await waitFor(() => replayProxy!.held === 1, "the replay request sent on reconnection");
    await replayProxy!.restore();
    await pub.send(5n, payload(5));
    await waitFor(() => rec.log.length === 6, "the live batch and the replayed gap");
    expect(rec.seqs()).toEqual([0n, 1n, 2n, 3n, 4n, 5n]);
    expect(rec.log.map((d) => d.kind === "batch" && d.replayed)).toEqual([false, false, false, true, true, false]);
    expect(sub.stats).toMatchObject({ gaps: 1, publisherRestarts: 0, unrecoveredGaps: 0 });
    expect(pub.replayRequests).toEqual([0n, 2n]);
  });

  it("tells a publisher restarted across a reconnection, whose sequence passed the old one, by its replay: rank reset, new stream from 0", async () => {
    const { pubProxy, replayProxy, rec, sub } = await behindProxy({ proxyReplay: true });
    const restarted = await WirePublisher.start();
    cleanups.push(() => restarted.close());
    await Promise.all([pubProxy.cut(), replayProxy!.cut()]);
    for (let i = 0; i < 10; i++) await restarted.send(BigInt(i), payload(100 + i), { live: false });
    pubProxy.targetPort = restarted.port;
    replayProxy!.targetPort = restarted.replayPort;
    await Promise.all([pubProxy.restore(), replayProxy!.restore()]);
    await restarted.waitForSubscriber();
    await restarted.send(10n, payload(110));
    await waitFor(() => rec.log.length === 3 + 1 + 11, "the restarted publisher's stream");
    expect(rec.seqs()).toEqual([
      0n,
      1n,
      2n,
      "reset:publisher_restart",
      ...Array.from({ length: 11 }, (_, i) => BigInt(i)),
    ]);
    expect(Buffer.from((rec.log[4] as { payload: Uint8Array }).payload)).toEqual(Buffer.from(payload(100)));
    expect(sub.stats.publisherRestarts).toBe(1);
  });
});

describe("ZmqEventPublisher", () => {
  async function publisher(options: Partial<Parameters<typeof ZmqEventPublisher.open>[0]> = {}) {
    const replayEndpoint = `tcp://127.0.0.1:${await freePort()}`;
    const p = await ZmqEventPublisher.open({
      endpoint: `tcp://127.0.0.1:${await freePort()}`,
      replayEndpoint,
      bind: true,
      topic: "kv-events",
      ...options,
    });
    cleanups.push(() => p.close());
    return { p, replayEndpoint };
  }

  for (const replyShape of ["with-topic", "legacy"] as const) {
    it(`serves replay from the requested seq with an end marker (${replyShape})`, async () => {
      const { p, replayEndpoint } = await publisher({ replyShape, bufferSteps: 4, firstSeq: 1n });
      for (let i = 1; i <= 6; i++) await p.publishPayload(payload(i));
      expect(p.nextSeq).toBe(7n);
      const all = await requestReplay(replayEndpoint, 0n, 2_000);
      expect(all.complete).toBe(true);
      expect(all.batches.map((b) => b.seq)).toEqual([3n, 4n, 5n, 6n]); // buffer_steps = 4
      expect(all.batches[0]!.topic).toBe(replyShape === "with-topic" ? "kv-events" : "");
      const tail = await requestReplay(replayEndpoint, 5n, 2_000);
      expect(tail.batches.map((b) => b.seq)).toEqual([5n, 6n]);
      expect(Buffer.from(tail.batches[1]!.payload)).toEqual(Buffer.from(payload(6)));
    });
  }

  it("reports an incomplete replay when nobody answers", async () => {
    const reply = await requestReplay(`tcp://127.0.0.1:${await freePort()}`, 0n, 200);
    expect(reply).toEqual({ batches: [], complete: false });
  });

  it("survives a publisher restart: the sequence reset clears the rank and catches up from 0", async () => {
    const port = await freePort();
    const replayPort = await freePort();
    const options = {
      endpoint: `tcp://127.0.0.1:${port}`,
      replayEndpoint: `tcp://127.0.0.1:${replayPort}`,
      bind: true,
    };
    let p = await ZmqEventPublisher.open(options);
    const rec = new Recorder();
    const sub = new ZmqEventSubscriber(rec, { log: quiet, reconnectIntervalMs: 50 });
    cleanups.push(() => sub.close());
    await sub.addWorker({ workerId: 1n, ...options });
    for (let i = 0; i < 3; i++) await p.publishPayload(payload(i));
    await waitFor(() => rec.log.length === 3, "first run");
    await p.close();
    p = await ZmqEventPublisher.open(options);
    cleanups.push(() => p.close());
    // Publish into the void until the subscriber has reconnected: the early ones come back through replay.
    let sent = 0;
    await waitFor(
      async () => {
        if (sent < 50) {
          await p.publishPayload(payload(100 + sent));
          sent++;
        }
        return rec.log.some((d) => d.kind === "reset");
      },
      "the restart to be noticed",
      15_000,
      50,
    );
    await waitFor(() => rec.log.filter((d) => d.kind === "batch").length === 3 + sent, "every batch of the second run");
    const after = rec.seqs().slice(3);
    expect(after[0]).toBe("reset:publisher_restart");
    expect(after.slice(1)).toEqual(Array.from({ length: sent }, (_, i) => BigInt(i)));
    expect(sub.stats.publisherRestarts).toBe(1);
  });
});

describe("ZmqEventSubscriber on a quiet publisher", () => {
  it("fetches the replay buffer on connect when everything was published before the subscription", async () => {
    const endpoint = `tcp://127.0.0.1:${await freePort()}`;
    const replayEndpoint = `tcp://127.0.0.1:${await freePort()}`;
    const p = await ZmqEventPublisher.open({ endpoint, replayEndpoint, bind: true });
    for (let i = 0; i < 4; i++) await p.publishPayload(payload(i));
    const rec = new Recorder();
    const sub = new ZmqEventSubscriber(rec, { log: quiet });
    cleanups.push(
      () => p.close(),
      () => sub.close(),
    );
    await sub.addWorker({ workerId: 2n, endpoint, replayEndpoint });
    await waitFor(() => rec.log.length === 4, "the history");
    expect(rec.seqs()).toEqual([0n, 1n, 2n, 3n]);
    await p.publishPayload(payload(4));
    await waitFor(() => rec.log.length === 5, "the next live batch");
    expect(rec.log.map((d) => d.kind === "batch" && d.replayed)).toEqual([true, true, true, true, false]);
    expect(sub.stats.gaps).toBe(0);
  });
});

/** A publisher and one worker's events straight into a `RadixIndex` through `VllmEventIngest`. */
async function directIngestion(workerId: bigint) {
  const endpoint = `tcp://127.0.0.1:${await freePort()}`;
  const replayEndpoint = `tcp://127.0.0.1:${await freePort()}`;
  const p = await ZmqEventPublisher.open({ endpoint, replayEndpoint, bind: true });
  const index = new RadixIndex();
  const ingest = new VllmEventIngest({ blockSize: 16, log: quiet }, (event) => index.apply(event));
  const sub = new ZmqEventSubscriber(ingest, { log: quiet });
  cleanups.push(
    () => p.close(),
    () => sub.close(),
  );
  await sub.addWorker({ workerId, endpoint, replayEndpoint });
  return { p, index, ingest, sub };
}

describe("direct ingestion (ZeroMQ → translation → index, no NATS)", () => {
  it("empties the rank on an AllBlocksCleared sent over ZeroMQ, and later stores re-warm it", async () => {
    const { p, index } = await directIngestion(6n);
    const source = new EngineEventSource({ blockSize: 16, numGpuBlocks: 64, seed: 8 });
    const reference = new RadixIndex();
    const translator = new VllmEventTranslator({ workerId: 6n, dpRank: 0, blockSize: 16, log: quiet });
    let sent = 0;
    const publish = async (batch: VllmEventBatch) => {
      for (const event of translator.translateBatch({ ...batch, unknownEvents: 0, invalidEvents: 0 }))
        reference.apply(event);
      sent += batch.events.length;
      await p.publish(batch);
    };
    const lastId = () => BigInt(sent - 1);
    for (let i = 0; i < 30; i++) await publish(source.nextBatch());
    await waitFor(() => index.lastEventId(6n, 0) === lastId(), "the first 30 batches");
    expect(index.size).toBeGreaterThan(30);
    await publish(source.clearCache());
    await waitFor(() => index.lastEventId(6n, 0) === lastId(), "the clear");
    expect(index.size).toBe(0);
    for (let i = 0; i < 10; i++) await publish(source.nextBatch());
    await waitFor(() => index.lastEventId(6n, 0) === lastId(), "the stores after the clear");
    expect(index.size).toBeGreaterThan(0);
    expect(index.dump()).toEqual(reference.dump());
    expect(index.errorCounts).toEqual(reference.errorCounts);
  });

  it("stops delivering a removed worker's batches, even those already queued, and forgets its event ids", async () => {
    const { p, index, ingest, sub } = await directIngestion(5n);
    const source = new EngineEventSource({ blockSize: 16, seed: 3 });
    let published = 0;
    for (let i = 0; i < 20; i++) {
      const batch = source.nextBatch();
      published += batch.events.length;
      await p.publish(batch);
    }
    await waitFor(() => index.lastEventId(5n, 0) === BigInt(published - 1), "the first 20 batches");
    for (let i = 0; i < 200; i++) void p.publish(source.nextBatch()); // in flight while the worker goes away
    await sub.removeWorker(5n);
    ingest.forgetWorker(5n);
    index.removeWorker(5n);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(index.size).toBe(0);
    expect(index.lastEventId(5n, 0)).toBeUndefined();
    expect(sub.workerIds).toEqual([]);
    expect(ingest.translator({ workerId: 5n, dpRank: 0 }).nextEventId).toBe(0n); // a fresh sequence if it comes back
  });
});
