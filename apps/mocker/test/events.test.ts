import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decode } from "@msgpack/msgpack";
import { NatsDiscovery, StaticDiscovery, parseWorkerDocument } from "@dynamo/discovery";
import { decodeVllmEventBatch, requestReplay } from "@dynamo/kv-events";
import { RouterService } from "@dynamo/router-service";
import { NatsServer, freePort, freePortRun, waitFor } from "@dynamo/testkit";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMocker, type MockerHandle } from "../src/index.js";

const MODEL = "Qwen/Qwen3-0.6B";
const BLOCK = 16;
const quiet = () => undefined;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "mocker-events-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("KV events over ZeroMQ and discovery", () => {
  it("feeds the router's index through the project's subscriber, and route() then prefers the worker that served the prompt", async () => {
    const file = join(dir, "workers.yaml");
    const mocker: MockerHandle = await startMocker({
      model: MODEL,
      blockSize: BLOCK,
      numWorkers: 2,
      speedupRatio: 0,
      zmqKvEventsPorts: [await freePort(), await freePort()],
      zmqReplayPorts: [await freePort(), await freePort()],
      discoveryFile: file,
      workerNamePrefix: "mocker-events",
    });
    const service = await RouterService.start({
      router: { blockSize: BLOCK, rng: () => 0.5 },
      settings: { discovery: "static", eventPlane: "zmq" },
      discovery: new StaticDiscovery({ file, pollIntervalMs: 0 }),
      tokenizer: { threads: 1 },
      log: quiet,
    });
    try {
      await service.whenReady(30_000);
      expect(
        service
          .listWorkers()
          .map((w) => w.id)
          .sort(),
      ).toEqual(mocker.workers.map((w) => w.id).sort());
      const parsed = parseWorkerDocument(await readFile(file, "utf8"), file);
      expect(parsed.ok).toBe(true);
      const second = mocker.workers[1]!;
      if (parsed.ok) {
        const info = parsed.workers.find((w) => w.id === second.id)!;
        expect(info).toMatchObject({
          httpEndpoint: `127.0.0.1:${second.port}`,
          blockSize: BLOCK,
          modelName: MODEL,
          kvEvents: { endpoints: [`tcp://127.0.0.1:${second.zmqPort}`] },
        });
        expect(Object.keys(info.modelCard!.files)).toContain("tokenizer.json");
      }

      const body = {
        model: MODEL,
        messages: [
          {
            role: "user" as const,
            content: "Describe, in great detail, how a KV cache saves work for repeated prompts. ".repeat(6),
          },
        ],
        max_tokens: 3,
      };
      const before = await service.route({ body, queryOnly: true });
      expect(before.overlapBlocks).toBe(0);
      const client = new OpenAI({ baseURL: `${second.url}/v1`, apiKey: "unused", maxRetries: 0 });
      await client.chat.completions.create(body);
      const promptBlocks = Math.floor(mocker.received.at(-1)!.promptTokenIds.length / BLOCK);
      await waitFor(
        async () => (await service.route({ body, queryOnly: true })).overlapBlocks === promptBlocks,
        "the second worker's blocks in the router's index",
        20_000,
      );
      const decision = await service.route({ body, queryOnly: true });
      expect(decision.worker.workerId).toBe(second.id);
      expect(decision.endpoint).toBe(`127.0.0.1:${second.port}`);

      // The replay socket serves the same batches from the start.
      const replay = await requestReplay(`tcp://127.0.0.1:${second.replayPort}`, 0n, 5_000);
      expect(replay.complete).toBe(true);
      const stored = replay.batches
        .flatMap((b) => decodeVllmEventBatch(b.payload).events)
        .filter((e) => e.type === "BlockStored");
      expect(stored.reduce((n, e) => n + (e.type === "BlockStored" ? e.blockHashes.length : 0), 0)).toBe(promptBlocks);
    } finally {
      await service.stop();
      await mocker.close();
    }
  });

  it("gives each data-parallel rank its own HTTP port, engine and event stream (port + rank), in map encoding when asked", async () => {
    // Rank r publishes on port + r and answers replay on replay port + r.
    const zmq = await freePortRun(2);
    const mocker = await startMocker({
      model: MODEL,
      blockSize: BLOCK,
      dataParallelSize: 2,
      speedupRatio: 0,
      zmqKvEventsPorts: [zmq],
      zmqReplayPorts: [await freePortRun(2)],
      kvEventsEncoding: "map",
    });
    try {
      const [worker] = mocker.workers;
      expect(worker!.rankPorts).toHaveLength(2);
      const rank1 = `http://127.0.0.1:${worker!.rankPorts[1]}`;
      const client = new OpenAI({ baseURL: `${rank1}/v1`, apiKey: "unused", maxRetries: 0 });
      const ids = Array.from({ length: 64 }, (_, i) => 7000 + i);
      const { response } = await client.completions.create({ model: MODEL, prompt: ids, max_tokens: 2 }).withResponse();
      expect(response.headers.get("x-inference-port")).toBe(String(worker!.rankPorts[1]));
      expect(mocker.received.at(-1)!.dpRank).toBe(1);
      const replay = await requestReplay(`tcp://127.0.0.1:${worker!.replayPort! + 1}`, 0n, 5_000);
      const batches = replay.batches.map((b) => decodeVllmEventBatch(b.payload));
      expect(batches.length).toBeGreaterThan(0);
      expect(batches.every((b) => b.dataParallelRank === 1)).toBe(true);
      expect(batches[0]!.events[0]).toMatchObject({ type: "BlockStored", tokenIds: ids });
      // Map encoding: each event is a msgpack map inside the batch array.
      const wire = decode(replay.batches[0]!.payload) as [number, unknown[], number];
      expect(wire[1][0]).toMatchObject({ type: "BlockStored", block_size: BLOCK });
      // Rank 0 served nothing: its replay buffer is empty.
      const rank0 = await requestReplay(`tcp://127.0.0.1:${worker!.replayPort!}`, 0n, 5_000);
      expect(rank0).toMatchObject({ complete: true, batches: [] });
      expect(mocker.cachedBlocks()).toBe(4);
    } finally {
      await mocker.close();
    }
  });

  it("registers its workers in NATS discovery with their model card, and leaves it on close", async () => {
    const nats = await NatsServer.start();
    const discovery = new NatsDiscovery({ servers: nats.url, namespacePrefix: "mocker-test" });
    try {
      const mocker = await startMocker({
        model: MODEL,
        blockSize: BLOCK,
        numWorkers: 2,
        dataParallelSize: 2,
        speedupRatio: 0,
        natsServers: [nats.url],
        namespace: "mocker-test",
        numGpuBlocks: 1000,
      });
      await discovery.start();
      try {
        await waitFor(() => discovery.list().length === 2, "both workers in NATS discovery", 20_000);
        const worker = discovery.list().find((w) => w.id === mocker.workers[1]!.id)!;
        expect(worker).toMatchObject({
          name: mocker.workers[1]!.name,
          role: "both",
          namespace: "mocker-test",
          component: "backend",
          dpSize: 2,
          blockSize: BLOCK,
          modelName: MODEL,
          capacity: { totalKvBlocks: 1000, maxNumBatchedTokens: 8192 },
          rankHttpEndpoints: mocker.workers[1]!.rankPorts.map((port) => `127.0.0.1:${port}`),
        });
        expect(Object.keys(worker.modelCard!.files)).toEqual(
          expect.arrayContaining(["tokenizer.json", "tokenizer_config.json"]),
        );
      } finally {
        await mocker.close();
      }
      await waitFor(() => discovery.list().length === 0, "the workers to leave discovery", 20_000);
    } finally {
      await discovery.stop();
      await nats.dispose();
    }
  });
});
