import {
  NatsServer,
  TestWorker,
  stageAppBundle,
  waitFor,
  type RunningProcess,
  type StagedBundle,
} from "@dynamo/testkit";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freeEppPorts, startEppProcess, waitServing, type EppPorts, type EppProcess } from "./epp-processes.js";
import { MODEL, startDevGateway, staticDiscoveryEnv } from "./support.js";

interface Replica {
  name: string;
  /** Kept across restarts: the replacement takes the same address. */
  ports: EppPorts;
  epp?: EppProcess;
}

// Two EPP processes sharing bookings over a real nats-server, behind the dev gateway (health-checked every
// 200 ms), restarted one after the other while the `openai` client keeps requests flowing.
describe("rolling restart of two EPP replicas behind the dev gateway (DYN_ROUTER_REPLICA_SYNC=true)", () => {
  let bundle: StagedBundle;
  let nats: NatsServer;
  let workers: TestWorker[];
  let replicas: Replica[];
  let gateway: RunningProcess;
  let gatewayUrl: string;
  const gatewayLog = () => gateway.lines;
  const stopped: EppProcess[] = [];

  const start = (replica: Replica): Promise<EppProcess> =>
    startEppProcess(
      bundle,
      `replica ${replica.name}`,
      {
        ...staticDiscoveryEnv(workers.map((w) => ({ name: w.name, http: w.endpoint }))),
        DYN_EVENT_PLANE: "none",
        DYN_ROUTER_REPLICA_SYNC: "true",
        NATS_SERVER: nats.url,
        DYN_KV_CACHE_BLOCK_SIZE: "16",
        // NOT_SERVING for 2 s before streams are refused: ten health checks of the gateway.
        DYN_EPP_GRACEFUL_SHUTDOWN_PROPAGATION_SECS: "2",
        DYN_EPP_GRACEFUL_SHUTDOWN_DRAIN_SECS: "30",
      },
      { ports: replica.ports },
    );

  beforeAll(async () => {
    nats = await NatsServer.start({ jetstream: false });
    workers = [
      await TestWorker.start("w1", "127.0.0.1", { streamDelayMs: 10, streamChunks: 20 }),
      await TestWorker.start("w2", "127.0.0.2", { streamDelayMs: 10, streamChunks: 20 }),
    ];
    bundle = await stageAppBundle("epp");
    replicas = [];
    for (const name of ["a", "b"]) replicas.push({ name, ports: await freeEppPorts() });
    for (const replica of replicas) replica.epp = await start(replica);
    for (const replica of replicas) await waitServing(replica.epp!, 120_000);
    const pickers = replicas.map((r) => `127.0.0.1:${r.ports.extProc}`).join(",");
    ({ process: gateway, url: gatewayUrl } = await startDevGateway(
      ["--epp", pickers, "--epp-tls", "off", "--epp-health-interval", "200"],
      { DEV_GATEWAY_ENDPOINTS: workers.map((w) => w.endpoint).join(",") },
    ));
  }, 240_000);

  afterAll(async () => {
    await gateway?.stop(5_000);
    for (const replica of replicas ?? []) await replica.epp?.stop(5_000);
    for (const epp of stopped) await epp.stop(5_000);
    for (const worker of workers ?? []) await worker.close();
    await nats?.dispose();
    bundle?.remove();
  });

  it("loses no request while each replica in turn drains, exits and comes back warm", async () => {
    const openai = new OpenAI({ baseURL: `${gatewayUrl}/v1`, apiKey: "unused", maxRetries: 0, timeout: 60_000 });
    const failures: string[] = [];
    let succeeded = 0;
    let flowing = true;
    // A steady stream: a new streamed request every 25 ms, each taking about 200 ms on its worker.
    const traffic = (async () => {
      const pending: Array<Promise<void>> = [];
      for (let i = 0; flowing; i++) {
        pending.push(
          (async () => {
            try {
              const stream = await openai.chat.completions.create({
                model: MODEL,
                messages: [{ role: "user", content: `request ${i}: tell me about Aeloria` }],
                stream: true,
              });
              let text = "";
              for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
              if (!text.startsWith("Hello from w")) throw new Error(`unexpected answer "${text}"`);
              succeeded++;
            } catch (error) {
              failures.push(`request ${i}: ${(error as Error).message}`);
            }
          })(),
        );
        await new Promise((r) => setTimeout(r, 25));
      }
      await Promise.all(pending);
    })();

    await waitFor(() => succeeded >= 20, "traffic through both replicas", 60_000);
    for (const replica of replicas) {
      const old = replica.epp!;
      stopped.push(old);
      const before = succeeded;
      old.process.child.kill("SIGTERM");
      await waitFor(
        () =>
          gatewayLog().includes(`endpoint picker 127.0.0.1:${replica.ports.extProc} unhealthy (health NOT_SERVING)`),
        `the gateway to see ${replica.name} NOT_SERVING`,
        20_000,
      );
      expect(await old.process.exited).toBe(0);
      expect(old.process.json().some((l) => l["msg"] === "endpoint picker stopped")).toBe(true);
      await old.stop();
      // The replacement takes the same address, joins its peer's bookings, and only then reports ready.
      replica.epp = await start(replica);
      await waitServing(replica.epp, 120_000);
      expect(replica.epp.process.json().some((l) => l["msg"] === "replica sync: joined")).toBe(true);
      await waitFor(
        () => gatewayLog().includes(`endpoint picker 127.0.0.1:${replica.ports.extProc} healthy (health SERVING)`),
        `the gateway to take ${replica.name} back`,
        20_000,
      );
      await waitFor(() => succeeded >= before + 40, "traffic after the restart", 60_000);
    }
    // Both new replicas serve: each has routed requests since it started.
    const routedBy = (r: Replica) => gatewayLog().filter((l) => l.endsWith(` via 127.0.0.1:${r.ports.extProc}`)).length;
    const routedAtEnd = replicas.map(routedBy);
    await waitFor(() => replicas.every((r, i) => routedBy(r) >= routedAtEnd[i]! + 5), "both replicas routing", 60_000);
    flowing = false;
    await traffic;
    expect(failures).toEqual([]);
    expect(succeeded).toBeGreaterThan(100);
  }, 600_000);
});
