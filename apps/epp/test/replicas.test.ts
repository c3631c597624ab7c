import { NatsServer, waitFor } from "@dynamo/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeSharedTokenizer, idOf, respond, send, seedRequest, startEpp, type TestEpp } from "./support.js";

const WORKERS = [
  { name: "worker-a", http: "10.1.0.1:8000" },
  { name: "worker-b", http: "10.1.0.2:8000" },
];

describe("several EPP replicas sharing bookings over NATS (DYN_ROUTER_REPLICA_SYNC=true)", () => {
  let nats: NatsServer;
  let a: TestEpp;
  let b: TestEpp;

  beforeAll(async () => {
    nats = await NatsServer.start({ jetstream: false });
    const env = {
      DYN_ROUTER_REPLICA_SYNC: "true",
      DYN_ROUTER_REPLICA_AUDIT_EVERY: "1",
      NATS_SERVER: nats.url,
      DYN_SECURE_SERVING: "false",
    };
    a = await startEpp({ workers: WORKERS, env, tls: false });
    b = await startEpp({ workers: WORKERS, env, tls: false });
  }, 60_000);

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await nats?.dispose();
    await closeSharedTokenizer();
  });

  const load = (t: TestEpp, name: string) =>
    t.epp.service.router!.load({ workerId: idOf(name), dpRank: 0 })?.activeRequests ?? 0;

  it("a request booked by replica A counts in B's load view until its response ends", async () => {
    await waitFor(() => b.epp.replicas!.stats.peers === 1 && a.epp.replicas!.stats.peers === 1, "the replicas to meet");
    const { exchange, result } = await send(a.client, seedRequest());
    expect(result.type).toBe("continue");
    const chosen = WORKERS.find((w) => load(a, w.name) === 1)!;
    await waitFor(() => load(b, chosen.name) === 1, "A's booking in B's view");
    const metrics = await (await fetch(`http://127.0.0.1:${b.epp.metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/^dynamo_epp_replica_peer_bookings\{model="[^"]+"\} 1$/m);
    expect(metrics).toMatch(/^dynamo_epp_replica_peers\{model="[^"]+"\} 1$/m);

    // B scores the same request on the whole cluster's load: the worker A loaded is no longer free.
    const { exchange: second } = await send(b.client, seedRequest());
    const other = WORKERS.find((w) => w.name !== chosen.name)!;
    await waitFor(() => load(a, other.name) === 1, "B's booking in A's view");

    await respond(exchange);
    await respond(second);
    await waitFor(() => WORKERS.every((w) => load(a, w.name) === 0 && load(b, w.name) === 0), "both frees everywhere");

    // Each decision was audited and, made after the other replica's booking had arrived, changed by nothing.
    const scrape = async (t: TestEpp) => (await fetch(`http://127.0.0.1:${t.epp.metricsPort}/metrics`)).text();
    for (const t of [a, b])
      await waitFor(
        async () => /^dynamo_epp_replica_decisions_rechecked_total\{model="[^"]+"\} 1$/m.test(await scrape(t)),
        "the decision re-scored",
      );
    for (const t of [a, b])
      expect(await scrape(t)).toMatch(/^dynamo_epp_replica_decision_conflicts_total\{model="[^"]+"\} 0$/m);
  });
});
