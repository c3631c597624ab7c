import { connect, type NatsConnection } from "@nats-io/transport-node";
import { RouterService } from "@dynamo/router-service";
import { NatsServer, waitFor } from "@dynamo/testkit";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ReplicaSync, encodeMessage, type BookingChange, type ReplicaSyncOptions } from "../src/index.js";

let server: NatsServer;
beforeAll(async () => {
  server = await NatsServer.start({ jetstream: false });
});
afterAll(async () => {
  await server.dispose();
});

const WORKERS = [1n, 2n, 3n];
const TIMING: ReplicaSyncOptions = { leaseMs: 800, heartbeatMs: 100, warmJoinMs: 1_500 };

interface Replica {
  service: RouterService;
  sync: ReplicaSync;
  nc: NatsConnection;
}
const running: Replica[] = [];

/** A router replica: a router service over three workers, its bookings shared over NATS. */
async function replica(prefix: string, options: ReplicaSyncOptions = {}): Promise<Replica> {
  const nc = await connect({ servers: server.url });
  // The service publishes through the sync, which needs the service: bound once both exist.
  const link: { sync?: ReplicaSync } = {};
  const service = await RouterService.start({
    router: { blockSize: 16, trackOutputBlocks: true, replicaAuditEvery: 1 },
    tokenizer: false,
    onBookingChange: (change) => link.sync?.publish(change),
    onDecisionAudit: (audit) => link.sync?.audit(audit),
  });
  for (const id of WORKERS) service.addWorker({ id, httpEndpoint: `10.0.0.${id}:8000` });
  const sync = await ReplicaSync.start(nc, service, { ...TIMING, subjectPrefix: prefix, ...options });
  link.sync = sync;
  const r = { service, sync, nc };
  running.push(r);
  return r;
}

const activeOn = (r: Replica, workerId: bigint) => r.service.router!.load({ workerId, dpRank: 0 })?.activeRequests ?? 0;
const totalActive = (r: Replica) => WORKERS.reduce((sum, id) => sum + activeOn(r, id), 0);
const tokens = (seed: number, length = 64) => Array.from({ length }, (_, i) => seed * 1000 + i);

afterEach(async () => {
  for (const r of running.splice(0)) {
    await r.sync.close();
    await r.service.stop();
    await r.nc.close().catch(() => undefined);
  }
});

describe("replicas sharing bookings over NATS", () => {
  it("a booking made on A shows in B's load view, and its free too", async () => {
    const a = await replica("t1");
    const b = await replica("t1");
    const d = await a.service.route({ tokens: tokens(1), requestId: "r1" });
    await waitFor(() => activeOn(b, d.worker.workerId) === 1, "A's booking at B");
    // B now scores the worker A booked as loaded: identical requests spread instead of piling up.
    const next = await b.service.route({ tokens: tokens(2), requestId: "r2" });
    expect(next.worker.workerId).not.toBe(d.worker.workerId);
    a.service.free("r1");
    await waitFor(() => activeOn(b, d.worker.workerId) === 0, "A's free at B");
    expect(b.sync.stats).toMatchObject({ peers: 1, peerBookings: 0, malformed: 0 });
  });

  it("output growth reaches the peers: B counts A's output blocks as A does", async () => {
    const a = await replica("t7");
    const b = await replica("t7");
    const d = await a.service.route({ tokens: tokens(3), requestId: "long" });
    a.service.markPrefillComplete("long");
    for (let generated = 1; generated <= 100; generated++) a.service.observeOutput("long", generated);
    const rank = { workerId: d.worker.workerId, dpRank: 0 };
    expect(a.service.router!.load(rank)!.activeBlocks).toBe(4 + 7); // 64 prompt + 100 output tokens: 11 blocks
    await waitFor(
      () => JSON.stringify(b.service.router!.load(rank)) === JSON.stringify(a.service.router!.load(rank)),
      "A's output blocks at B",
    );
  });

  it("measures the race: decisions made at the same instant on the same worker are counted as conflicts", async () => {
    const a = await replica("t8");
    const b = await replica("t8");
    await waitFor(() => a.sync.stats.peers === 1 && b.sync.stats.peers === 1, "the replicas to meet");
    // Two bookings made one after the other, each seen by the peer before the next: no conflict.
    await a.service.route({ tokens: tokens(60, 32), requestId: "p1" });
    await waitFor(() => totalActive(b) === 1, "p1 at B");
    await b.service.route({ tokens: tokens(61, 32), requestId: "p2" });
    await waitFor(() => totalActive(a) === 2, "p2 at A");
    await waitFor(() => a.sync.stats.decisionsRechecked === 1 && b.sync.stats.decisionsRechecked === 1, "audits");
    expect(a.sync.stats).toMatchObject({ decisionConflicts: 0, concurrentBookings: 0 });
    expect(b.sync.stats).toMatchObject({ decisionConflicts: 0, concurrentBookings: 0 });
    // One worker is idle: both replicas pick it at the same instant, neither seeing the other's booking (which,
    // twice the size of p1 and p2, would have made either loaded worker cheaper).
    const [x, y] = await Promise.all([
      a.service.route({ tokens: tokens(62), requestId: "x" }),
      b.service.route({ tokens: tokens(63), requestId: "y" }),
    ]);
    expect(x.worker.workerId).toBe(y.worker.workerId);
    await waitFor(() => a.sync.stats.decisionsRechecked === 2 && b.sync.stats.decisionsRechecked === 2, "re-scores");
    // Each would have chosen another worker had it known the other's booking.
    for (const r of [a, b]) expect(r.sync.stats).toMatchObject({ decisionConflicts: 1, concurrentBookings: 1 });
  });

  it("a replica that dies without a goodbye loses its bookings at every peer within the lease", async () => {
    const a = await replica("t2");
    const b = await replica("t2");
    for (let i = 0; i < 5; i++) await a.service.route({ tokens: tokens(10 + i), requestId: `a${i}` });
    await waitFor(() => totalActive(b) === 5, "A's five bookings at B");
    // A crashes: its connection drops, no goodbye is sent, its heartbeats stop.
    running.splice(running.indexOf(a), 1);
    await a.nc.close();
    const died = Date.now();
    await waitFor(() => totalActive(b) === 0, "A's bookings gone from B", 10 * TIMING.leaseMs!);
    expect(Date.now() - died).toBeGreaterThanOrEqual(TIMING.leaseMs! - 2 * TIMING.heartbeatMs!);
    expect(b.sync.stats).toMatchObject({ peers: 0, expiredPeers: 1, expiredBookings: 5 });
    await a.sync.close();
    await a.service.stop();
  });

  it("a joining replica loads its peers' live bookings before it routes", async () => {
    const a = await replica("t3");
    for (let i = 0; i < 3; i++) await a.service.route({ tokens: tokens(20 + i), requestId: `a${i}` });
    a.service.markPrefillComplete("a0");
    const c = await replica("t3");
    expect(await c.sync.warmJoin()).toBe(1);
    expect(totalActive(c)).toBe(3);
    for (const id of WORKERS)
      expect(c.service.router!.load({ workerId: id, dpRank: 0 })).toEqual(
        a.service.router!.load({ workerId: id, dpRank: 0 }),
      );
  });

  it("after a NATS restart the views converge again: bookings made meanwhile show, bookings freed meanwhile go", async () => {
    const a = await replica("t4");
    const b = await replica("t4");
    await a.service.route({ tokens: tokens(30), requestId: "before" });
    await a.service.route({ tokens: tokens(32), requestId: "kept" });
    await waitFor(() => totalActive(b) === 2, "the first bookings at B");
    await server.stop();
    const during = await a.service.route({ tokens: tokens(31), requestId: "during" });
    a.service.free("before");
    await server.restart();
    // Whether A's changes sent while disconnected reached B or were lost, B ends up with A's live bookings.
    await waitFor(
      () => totalActive(b) === 2 && activeOn(b, during.worker.workerId) >= 1 && b.sync.stats.peerBookings === 2,
      "A's live bookings at B after the restart",
      30_000,
    );
    for (const id of WORKERS) expect(activeOn(b, id)).toBe(activeOn(a, id));
    a.service.free("kept");
    a.service.free("during");
    await waitFor(() => totalActive(b) === 0, "the frees at B");
  });

  it("a gap in a peer's sequence numbers makes the replica ask for its snapshot, which repairs the view", async () => {
    const a = await replica("t7");
    const b = await replica("t7");
    const seen = await a.service.route({ tokens: tokens(60), requestId: "seen" });
    await waitFor(() => totalActive(b) === 1 && b.sync.stats.peers === 1, "the booking at B");
    // A changes message in A's name that skips sequence numbers, adding a booking A never made: B applies it,
    // notices the gap, asks A for its snapshot and drops what A does not hold.
    const phantom: BookingChange = {
      requestId: "phantom",
      worker: seen.worker,
      pool: "decode",
      routerId: 1n,
      data: { type: "add_request", tokenSequence: null, privateBlocks: 4, isl: 64, prefillTokens: 64 },
    };
    b.nc.publish(
      `t7.changes.${a.sync.replicaId}`,
      encodeMessage({ kind: "changes", replica: a.sync.replicaId, changes: [phantom], seq: 1_000 }),
    );
    await waitFor(() => b.sync.stats.resyncs === 1, "B to ask A for its snapshot");
    await waitFor(() => totalActive(b) === 1 && b.sync.stats.peerBookings === 1, "the phantom gone from B");
    for (const id of WORKERS) expect(activeOn(b, id)).toBe(activeOn(a, id));
  });

  it("a graceful stop says goodbye: peers drop its bookings at once", async () => {
    const a = await replica("t5", { leaseMs: 60_000, heartbeatMs: 1_000 });
    const b = await replica("t5", { leaseMs: 60_000, heartbeatMs: 1_000 });
    await a.service.route({ tokens: tokens(40), requestId: "x" });
    await waitFor(() => totalActive(b) === 1, "the booking at B");
    running.splice(running.indexOf(a), 1);
    await a.sync.close();
    await waitFor(() => totalActive(b) === 0, "the goodbye at B", 5_000);
    await a.service.stop();
    await a.nc.close();
  });

  it("a malformed message is counted and logged, and the sync carries on", async () => {
    const logs: string[] = [];
    const b = await replica("t6", { log: (m) => logs.push(m) });
    const a = await replica("t6");
    b.nc.publish("t6.changes.evil", Buffer.from('{"kind":"changes","replica":"evil","changes":[{"id":1}]}'));
    await a.service.route({ tokens: tokens(50), requestId: "ok" });
    await waitFor(() => totalActive(b) === 1, "the good booking at B");
    expect(b.sync.stats.malformed).toBe(1);
    expect(logs.some((l) => l.includes("malformed message on t6.changes.evil"))).toBe(true);
  });
});
