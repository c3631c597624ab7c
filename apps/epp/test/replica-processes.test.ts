import type { ExtProcExchange } from "@dynamo/ext-proc";
import { NatsServer, stageAppBundle, waitFor, type StagedBundle } from "@dynamo/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEppProcess, waitServing, type EppProcess } from "./epp-processes.js";
import { chat, idOf, respond, send, staticDiscoveryEnv } from "./support.js";

const WORKERS = ["worker-a", "worker-b"];
/** A short lease, so a dead replica's bookings go within a second (heartbeats every 100 ms). */
const LEASE_MS = 1000;
const HEARTBEAT_MS = LEASE_MS / 10;
/** The target for a booking to reach a peer's load view (the test allows 10 times as much). */
const VISIBLE_WITHIN_MS = 50;

interface Booking {
  readonly owner: EppProcess;
  readonly worker: string;
  readonly exchange: ExtProcExchange;
}

const quantile = (values: number[], q: number) =>
  [...values].sort((x, y) => x - y)[Math.floor(q * (values.length - 1))]!;
const ms = (value: number) => `${value.toFixed(1)} ms`;

// Two endpoint pickers as they ship (the staged bundle under plain node), sharing bookings over a real NATS
// server; their load views are read from outside, through each one's probe API.
describe("EPP replicas as separate processes sharing bookings over NATS", () => {
  let nats: NatsServer;
  let bundle: StagedBundle;
  let a: EppProcess;
  let b: EppProcess;
  const live = new Set<Booking>();

  beforeAll(async () => {
    nats = await NatsServer.start({ jetstream: false });
    bundle = await stageAppBundle("epp");
    const env = {
      ...staticDiscoveryEnv(WORKERS.map((name, i) => ({ name, http: `10.1.0.${i + 1}:8000` }))),
      DYN_EVENT_PLANE: "none",
      DYN_KV_CACHE_BLOCK_SIZE: "16",
      DYN_ROUTER_REPLICA_SYNC: "true",
      DYN_ROUTER_REPLICA_LEASE_SECS: String(LEASE_MS / 1000),
      NATS_SERVER: nats.url,
    };
    [a, b] = await Promise.all([startEppProcess(bundle, "replica A", env), startEppProcess(bundle, "replica B", env)]);
    await Promise.all([waitServing(a), waitServing(b)]);
    await waitFor(async () => (await peers(a)) === 1 && (await peers(b)) === 1, "the replicas to meet", 10_000);
  }, 120_000);

  afterAll(async () => {
    for (const booking of live) booking.exchange.close();
    await Promise.all([a?.stop(), b?.stop()]);
    await nats?.dispose();
    bundle?.remove();
  });

  const peers = (epp: EppProcess) => epp.metric("dynamo_epp_replica_peers");

  /** Books one request on `owner` (its stream stays open, so the booking stays live). */
  async function book(owner: EppProcess, content: string): Promise<Booking> {
    const { exchange, result } = await send(owner.client, chat(content));
    if (result.type !== "continue") throw new Error(`${owner.name} did not route: ${JSON.stringify(result)}`);
    const booking = { owner, worker: result.headers.get("x-dynamo-worker-instance-id")!, exchange };
    live.add(booking);
    return booking;
  }

  /** Ends a booking's response: its owner frees it. */
  async function free(booking: Booking): Promise<void> {
    live.delete(booking);
    await respond(booking.exchange);
  }

  /** Active requests per worker that every view should hold: the live bookings of the given owners. */
  function expected(owners: readonly EppProcess[]): Map<string, number> {
    const counts = new Map(WORKERS.map((name) => [idOf(name).toString(), 0]));
    for (const { owner, worker } of live) if (owners.includes(owner)) counts.set(worker, counts.get(worker)! + 1);
    return counts;
  }

  async function holds(view: EppProcess, owners: readonly EppProcess[]): Promise<boolean> {
    const seen = await view.activeRequests();
    return [...expected(owners)].every(([worker, count]) => (seen.get(worker) ?? 0) === count);
  }

  /** Milliseconds until `view` shows every live booking of `owners` (probing back to back). */
  async function converged(view: EppProcess, owners = [a, b], timeoutMs = 10_000): Promise<number> {
    const started = performance.now();
    await waitFor(() => holds(view, owners), `${view.name}'s load view to hold the bookings`, timeoutMs, 0);
    return performance.now() - started;
  }

  it(`shows a booking made on one replica in the other's load view within ${VISIBLE_WITHIN_MS} ms, and its free as fast`, async () => {
    // The figures include the last probe's round trip (tokenizing and scoring its prompt): measured alone here.
    const probes: number[] = [];
    for (let i = 0; i < 10; i++) probes.push(await converged(b));
    const booked: number[] = [];
    for (let i = 0; i < 12; i++) {
      const [owner, peer] = i % 2 === 0 ? [a, b] : [b, a];
      await book(owner, `Booking number ${i} of the visibility test.`);
      booked.push(await converged(peer));
    }
    expect([...live].filter((x) => x.owner === a)).toHaveLength(6);
    expect(await holds(a, [a, b])).toBe(true);
    const freed: number[] = [];
    for (const booking of [...live]) {
      await free(booking);
      freed.push(await converged(booking.owner === a ? b : a));
    }
    console.log(
      `booking → peer's load view (from the routing answer to the peer's first probe showing it, ${booked.length} bookings): ` +
        `median ${ms(quantile(booked, 0.5))}, max ${ms(Math.max(...booked))}; free → peer's view: median ${ms(quantile(freed, 0.5))}, max ${ms(Math.max(...freed))}; ` +
        `one probe round trip alone: median ${ms(quantile(probes, 0.5))}`,
    );
    expect(Math.max(...booked)).toBeLessThan(10 * VISIBLE_WITHIN_MS);
    expect(Math.max(...freed)).toBeLessThan(10 * VISIBLE_WITHIN_MS);
  });

  it("converges again after NATS restarts: bookings made while it was down show up, bookings freed meanwhile do not linger", async () => {
    const before = await book(a, "Booked before the NATS outage.");
    await converged(b);
    await nats.stop();
    await free(before); // its free cannot reach B now
    await book(a, "Booked on A while NATS is down.");
    await book(b, "Booked on B while NATS is down.");
    // Silent for a lease, each replica drops the other and its bookings; its own stay.
    await waitFor(
      async () => (await peers(a)) === 0 && (await peers(b)) === 0,
      "the peers' leases to run out",
      10 * LEASE_MS,
    );
    expect(await holds(a, [a])).toBe(true);
    expect(await holds(b, [b])).toBe(true);

    const restarted = performance.now();
    await nats.restart(); // the same port: both replicas reconnect by themselves
    const [onA, onB] = await Promise.all([converged(a, [a, b], 30_000), converged(b, [a, b], 30_000)]);
    console.log(
      `after the NATS restart (down for over the ${LEASE_MS} ms lease): views converged ${ms(onA)} (A) and ${ms(onB)} (B) after the server was back, ${ms(performance.now() - restarted)} after the restart began`,
    );
    expect(await peers(a)).toBe(1);
    expect(await peers(b)).toBe(1);

    const after = await book(a, "Booked on A after NATS came back.");
    expect(await converged(b)).toBeLessThan(10 * VISIBLE_WITHIN_MS);
    for (const booking of [...live]) await free(booking);
    await Promise.all([converged(a), converged(b)]);
    expect(live.has(after)).toBe(false);
  });

  it("converges after a brief NATS restart too: a free sent while the server was away does not leave a phantom", async () => {
    const before = await book(b, "Booked on B before a brief NATS restart.");
    await converged(a);
    const expired = await a.metric("dynamo_epp_replica_expired_bookings");
    const resyncs = await a.metric("dynamo_epp_replica_resyncs");
    await nats.stop();
    await free(before);
    await book(b, "Booked on B during the brief NATS restart.");
    await nats.restart();
    await Promise.all([converged(a, [a, b], 30_000), converged(b, [a, b], 30_000)]);
    const leaseRanOut = (await a.metric("dynamo_epp_replica_expired_bookings")) > expired;
    const resynced = (await a.metric("dynamo_epp_replica_resyncs")) > resyncs;
    console.log(
      `brief NATS restart: views converged; ${leaseRanOut ? "the lease ran out meanwhile" : "within the lease"}, ` +
        `${resynced ? "changes lost while disconnected repaired by a snapshot" : "the changes buffered while disconnected arrived"}`,
    );
    for (const booking of [...live]) await free(booking);
    await Promise.all([converged(a), converged(b)]);
  });

  it("drops the bookings of a replica killed with SIGKILL from its peer's view within the lease", async () => {
    for (let i = 0; i < 3; i++) await book(a, `Booked on A, which is about to die (${i}).`);
    await book(b, "Booked on B, which survives.");
    await Promise.all([converged(a), converged(b)]);
    const expiredBefore = await b.metric("dynamo_epp_replica_expired_bookings");

    const killed = performance.now();
    a.process.child.kill("SIGKILL");
    const orphans = [...live].filter((x) => x.owner === a);
    for (const orphan of orphans) live.delete(orphan);
    // B's view keeps its own booking and loses A's once A's lease has run out.
    await waitFor(() => holds(b, [b]), "A's bookings to leave B's view", 10 * (LEASE_MS + HEARTBEAT_MS), 0);
    const gone = performance.now() - killed;
    console.log(
      `SIGKILL → the dead replica's ${orphans.length} bookings gone from the peer's view after ${ms(gone)} (lease ${LEASE_MS} ms, heartbeat ${HEARTBEAT_MS} ms)`,
    );
    // The lease removed them: not before A's last heartbeat had aged a lease (less a few heartbeats of slack).
    expect(gone).toBeGreaterThanOrEqual(LEASE_MS - 3 * HEARTBEAT_MS);
    expect(b.process.json().some((l) => String(l["msg"]).includes(`dropped its ${orphans.length} bookings`))).toBe(
      true,
    );
    expect(await a.process.exited).toBeNull();
    for (const orphan of orphans) orphan.exchange.close();
    expect(await b.metric("dynamo_epp_replica_expired_bookings")).toBe(expiredBefore + orphans.length);
    expect(await peers(b)).toBe(0);
    for (const booking of [...live]) await free(booking);
    await converged(b, [b]);
  });
});
