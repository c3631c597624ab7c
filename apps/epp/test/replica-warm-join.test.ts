import type { ExtProcExchange } from "@dynamo/ext-proc";
import { KvEventBridge, connectEventPlane } from "@dynamo/kv-events";
import { startMocker, type MockerHandle } from "@dynamo/mocker";
import { NatsServer, freePort, stageAppBundle, waitFor, type StagedBundle } from "@dynamo/testkit";
import type { NatsConnection } from "@nats-io/transport-node";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEppProcess, waitServing, type EppProcess, type ProbeAnswer } from "./epp-processes.js";
import { MODEL, SEED_PROMPT, respond, send, staticDiscoveryEnv } from "./support.js";

const BLOCK_SIZE = 16;
const NAMESPACE = "dynamo";
const COMPONENT = "backend";
const OTHER_DOCUMENT =
  "The committee met on a grey morning to settle the budget of the harbour works. The engineers wanted a longer breakwater, the merchants a deeper channel, and the town council a promenade that would bring visitors in summer. Each party had drawn its own map, and none of the maps agreed about where the old wreck lay.";

const ask = (document: string, question: string) => ({
  model: MODEL,
  messages: [
    { role: "system", content: document },
    { role: "user", content: question },
  ],
  max_tokens: 4,
});

/** Every candidate's figures as a replica scores a request: overlap, prefill and decode load, active requests, cost. */
function figures(answer: ProbeAnswer) {
  return answer.candidates.map((c) => ({
    worker: c.worker,
    overlapBlocks: c.overlapBlocks,
    prefillBlocks: c.prefillBlocks,
    decodeBlocks: c.decodeBlocks,
    activeRequests: c.activeRequests,
    cost: c.cost,
  }));
}

/** Two replicas route a request the same way: the same figures, and the same worker (any of the cheapest on a tie). */
function expectSameRoute(answer: ProbeAnswer, reference: ProbeAnswer, label: string): void {
  expect(figures(answer), label).toEqual(figures(reference));
  const tied = cheapest(reference);
  if (tied.length === 1) expect(answer.chosen.worker, label).toBe(reference.chosen.worker);
  else expect(tied, label).toContain(answer.chosen.worker);
}

/** The workers of lowest cost (one, unless there is a tie). */
function cheapest(answer: ProbeAnswer): string[] {
  const lowest = Math.min(...answer.candidates.map((c) => c.cost));
  return answer.candidates.filter((c) => c.cost === lowest).map((c) => c.worker);
}

// Workers that cache prompts and publish their KV events (the mocker, over ZeroMQ, bridged onto NATS), a replica
// that has routed for a while, and a replica that joins: once it reports ready it routes like the other.
describe("a joining EPP replica: warm before it reports ready", () => {
  let nats: NatsServer;
  let bundle: StagedBundle;
  let mocker: MockerHandle;
  /** Each worker's bridge; `before`: the events it had published when the long-running replica came up. */
  const bridges: { bridge: KvEventBridge; nc: NatsConnection; workerId: bigint; before: number }[] = [];
  let env: Record<string, string>;
  let a: EppProcess;
  let c: EppProcess | undefined;
  const open: ExtProcExchange[] = [];
  const streams: (() => void)[] = [];

  beforeAll(async () => {
    nats = await NatsServer.start({ jetstream: false });
    [bundle, mocker] = await Promise.all([
      stageAppBundle("epp"),
      startMocker({
        model: MODEL,
        blockSize: BLOCK_SIZE,
        numWorkers: 2,
        speedupRatio: 0,
        zmqKvEventsPorts: [await freePort(), await freePort()],
        // Batches published before a bridge's subscription connects are replayed to it.
        zmqReplayPorts: [await freePort(), await freePort()],
        workerNamePrefix: "warm-join",
        log: () => undefined,
      }),
    ]);
    for (const worker of mocker.workers) {
      const nc = await connectEventPlane(nats.url);
      const bridge = await KvEventBridge.start({
        nc,
        namespace: NAMESPACE,
        component: COMPONENT,
        blockSize: BLOCK_SIZE,
        worker: {
          workerId: worker.id,
          endpoint: `tcp://127.0.0.1:${worker.zmqPort}`,
          replayEndpoint: `tcp://127.0.0.1:${worker.replayPort}`,
        },
      });
      bridges.push({ bridge, nc, workerId: worker.id, before: 0 });
    }
    env = {
      ...staticDiscoveryEnv(mocker.workers.map((w) => ({ name: w.name, http: `127.0.0.1:${w.port}` }))),
      DYN_EVENT_PLANE: "nats",
      DYN_NAMESPACE: NAMESPACE,
      DYN_COMPONENT_NAME: COMPONENT,
      DYN_KV_CACHE_BLOCK_SIZE: String(BLOCK_SIZE),
      DYN_ROUTER_REPLICA_SYNC: "true",
      NATS_SERVER: nats.url,
    };
    a = await startEppProcess(bundle, "long-running replica", env);
    await waitServing(a);
    // Nothing is cached yet: every event from here on reaches the long-running replica live.
    for (const entry of bridges) entry.before = entry.bridge.stats.published;
  }, 120_000);

  afterAll(async () => {
    for (const end of streams) end();
    for (const exchange of open) exchange.close();
    await Promise.all([a?.stop(), c?.stop()]);
    for (const { bridge, nc } of bridges) {
      await bridge.close();
      await nc.close();
    }
    await mocker?.close();
    await nats?.dispose();
    bundle?.remove();
  });

  /** Routes `body` on `epp`; returns the open exchange and the chosen worker. */
  async function route(epp: EppProcess, body: Record<string, unknown>) {
    const { exchange, result } = await send(epp.client, body);
    if (result.type !== "continue") throw new Error(`${epp.name} did not route: ${JSON.stringify(result)}`);
    open.push(exchange);
    return { exchange, worker: result.headers.get("x-dynamo-worker-instance-id")!, body: result.body! };
  }

  /** Routes on `epp`, sends the routed body (the prompt's token ids injected) to the chosen worker, ends the booking. */
  async function serve(epp: EppProcess, body: Record<string, unknown>): Promise<void> {
    const routed = await route(epp, body);
    const worker = mocker.workers.find((w) => w.id.toString() === routed.worker)!;
    const client = new OpenAI({ baseURL: `${worker.url}/v1`, apiKey: "unused", maxRetries: 0 });
    const completion = await client.chat.completions.create(JSON.parse(routed.body.toString()) as never);
    await respond(routed.exchange, { ...completion.usage });
  }

  /**
   * Whether every block the workers cache reached their bridges, and the long-running replica's index holds every
   * event the bridges published since it started.
   */
  async function caughtUp(epp: EppProcess): Promise<boolean> {
    for (const { bridge, workerId, before } of bridges) {
      if (bridge.index.size !== mocker.cachedBlocks(workerId)) return false;
      const applied = await epp.metric("dynamo_epp_kv_events_applied", { worker_id: workerId.toString() });
      if (applied < bridge.stats.published - before) return false;
    }
    return true;
  }

  it("reports ready only once it holds the peers' bookings and the KV state, then routes exactly as the long-running replica", async () => {
    // The long-running replica routes a while: prompts over two documents get cached on the workers.
    for (const document of [SEED_PROMPT, OTHER_DOCUMENT])
      for (const question of ["Summarise it.", "Who is it about?", "Where does it happen?"])
        await serve(a, ask(document, question));
    // Three requests still in flight on it: one past its prefill (its first response chunk went through).
    await route(a, ask(SEED_PROMPT, "What happens next?"));
    await route(a, ask(OTHER_DOCUMENT, "Which party wins?"));
    const streaming = await route(a, ask(OTHER_DOCUMENT, "Draw the map."));
    streams.push(await startStreaming(streaming.exchange));
    await waitFor(() => caughtUp(a), "the long-running replica to apply every KV event", 10_000);

    const probes = [
      ask(SEED_PROMPT, "What is the explorer looking for?"),
      ask(OTHER_DOCUMENT, "What did the merchants want?"),
      ask("An unrelated prompt that no worker has seen.", "Anything?"),
    ];
    const before = await Promise.all(probes.map((p) => a.probe(p)));
    // The state matters: the documents' blocks are cached somewhere, and three requests load the workers.
    const bestOverlap = (answer: ProbeAnswer) => Math.max(...answer.candidates.map((x) => x.overlapBlocks));
    expect(bestOverlap(before[0]!)).toBeGreaterThan(0);
    expect(bestOverlap(before[1]!)).toBeGreaterThan(0);
    expect(before[0]!.candidates.reduce((n, x) => n + x.activeRequests, 0)).toBe(3);

    // The joining replica: its health is polled back to back; the first probe follows the first SERVING.
    const joining = await startEppProcess(bundle, "joining replica", env);
    c = joining;
    const started = performance.now();
    await waitFor(
      async () => {
        if (joining.process.child.exitCode !== null) throw new Error(joining.process.lines.join("\n"));
        return joining.serving();
      },
      "the joining replica to report SERVING",
      60_000,
      5,
    );
    const readyAfter = performance.now() - started;
    const servingSeenAt = Date.now();
    const first: ProbeAnswer[] = [];
    for (const p of probes) first.push(await joining.probe(p));
    const longRunning = await Promise.all(probes.map((p) => a.probe(p)));
    console.log(
      `joining replica SERVING ${readyAfter.toFixed(0)} ms after its start; first routes: ${first
        .map((x) => `worker ${x.chosen.worker} overlap ${x.overlapBlocks}`)
        .join(", ")}`,
    );
    for (let i = 0; i < probes.length; i++) expectSameRoute(first[i]!, longRunning[i]!, `probe ${i}`);
    expect(longRunning.map(figures)).toEqual(before.map(figures));
    expect(await joining.metric("dynamo_epp_replica_peer_bookings")).toBe(3);
    // It had asked its peer and loaded its answer before the first SERVING (log times are wall-clock ms).
    await waitFor(() => joined(joining) !== undefined, "the joining replica's warm-join log line");
    expect(joined(joining)).toMatchObject({ peers: 1 });
    expect(joined(joining)!["time"] as number).toBeLessThanOrEqual(servingSeenAt);

    // And a real request on the new replica goes where its probe said, its booking reaching the old one's view.
    const routed = await route(joining, probes[0]!);
    expect(cheapest(first[0]!)).toContain(routed.worker);
    await waitFor(
      async () =>
        (await a.activeRequests()).get(routed.worker) ===
        first[0]!.candidates.find((x) => x.worker === routed.worker)!.activeRequests + 1,
      "the new replica's booking in the long-running replica's view",
    );
  });
});

const joined = (epp: EppProcess) => epp.process.json().find((line) => line["msg"] === "replica sync: joined");

/**
 * Sends response headers and a first SSE chunk through the exchange (the picker marks prefill complete); the
 * response stays open until the returned function ends its body.
 */
async function startStreaming(exchange: ExtProcExchange): Promise<() => void> {
  const head = await exchange.processResponseHeaders({ status: 200, headers: [["content-type", "text/event-stream"]] });
  if (head.type !== "continue") throw new Error(`response headers: ${head.type}`);
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  async function* body() {
    yield Buffer.from(
      'data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"A"}}]}\n\n',
    );
    await held;
  }
  const chunks = exchange.processResponseBody(body());
  const first = await chunks.next();
  if (first.done === true) throw new Error("the picker ended the response body early");
  return release;
}
