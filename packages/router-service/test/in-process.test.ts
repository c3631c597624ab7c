import { RouterEvents, computeBlockHashes, computeSequenceHashes } from "@dynamo/kv-indexer";
import type { VllmBlockStored } from "@dynamo/kv-events";
import { join } from "node:path";
import { TokenizerRegistry, embeddedModelDirectory } from "@dynamo/tokenizer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DuplicateRequestError,
  InvalidRequestError,
  NoCandidatesError,
  NotReadyError,
  OverloadedError,
  BlockSizeMismatchError,
  PrefillUnavailableError,
  QueueOverloadedError,
  RouteError,
  RouterService,
  UnknownModelError,
  type ActiveSequenceEvent,
} from "../src/index.js";
import { BS, storedBatch } from "./support/cluster.js";
import { StaticDiscovery } from "@dynamo/discovery";
import { storedBatch as storedBlocks } from "@dynamo/kv-events";

let tokenizers: TokenizerRegistry;

beforeAll(() => {
  tokenizers = new TokenizerRegistry({ threads: 1 });
});
afterAll(async () => {
  await tokenizers.close();
});

/** A service with no I/O: workers added in-process, events delivered in-process, a virtual clock. */
async function simulator(router: Record<string, unknown> = {}, clock = { now: 0 }) {
  return RouterService.start({
    router: { blockSize: BS, rng: () => 0, now: () => clock.now, ...router },
    tokenizer: tokenizers,
  });
}

const chat = (text: string) => ({ model: "Qwen/Qwen3-0.6B", messages: [{ role: "user", content: text }] });
const longText = (topic: string) =>
  Array.from({ length: 40 }, (_, i) => `${topic} paragraph ${i}: the quick brown fox jumps over the lazy dog.`).join(
    " ",
  );

async function expectError<T extends RouteError>(run: () => unknown, type: new (...args: never[]) => T): Promise<T> {
  try {
    await run();
  } catch (error) {
    expect(error).toBeInstanceOf(type);
    return error as T;
  }
  throw new Error(`expected ${type.name}`);
}

describe("RouterService without I/O (simulator mode)", () => {
  it("queues requests while every worker is over DYN_ROUTER_QUEUE_THRESHOLD; a full queue is a 429 QueueOverloadedError", async () => {
    const service = await simulator({ queueThreshold: 0.5, queueMaxDepth: 1 });
    service.addWorker({ id: 1n, httpEndpoint: "10.0.0.1:8000", capacity: { maxNumBatchedTokens: 2 * BS } });
    const first = await service.route({ tokens: Array.from({ length: 2 * BS }, (_, i) => i) });
    const waiting = service.route({ tokens: [7, 7, 7] });
    await new Promise((resolve) => setImmediate(resolve));
    const full = await expectError(() => service.route({ tokens: [8, 8, 8] }), QueueOverloadedError);
    expect(full.httpStatus).toBe(429);
    expect(full.code).toBe("queue_overloaded");
    service.markPrefillComplete(first.bookingId);
    expect((await waiting).endpoint).toBe("10.0.0.1:8000");
    await service.stop();
  });

  it("an event published by a worker changes the next route(): vLLM events land in the router's index", async () => {
    const service = await simulator();
    service.addWorker({ id: 1n, httpEndpoint: "10.0.0.1:8000" });
    service.addWorker({ id: 2n, httpEndpoint: "10.0.0.2:8000" });
    expect(service.ready).toBe(true);
    const request = { body: chat(longText("kv routing")) };
    const before = await service.route({ ...request, queryOnly: true });
    expect(before.overlapBlocks).toBe(0);
    expect(before.tokens.length).toBeGreaterThan(10 * BS);

    service.applyVllmEvents({ workerId: 2n, dpRank: 0 }, storedBatch(before.tokens, 500n));
    const after = await service.route(request);
    expect(after.worker).toEqual({ workerId: 2n, dpRank: 0 });
    expect(after.endpoint).toBe("10.0.0.2:8000");
    expect(after.overlapBlocks).toBe(Math.floor(before.tokens.length / BS));
    expect(after.injectable).toBe(true);
    expect([...after.tokens]).toEqual([...before.tokens]);
    expect(after.timings.tokenizeMs).toBeGreaterThan(0);
    expect(after.timings.routeMs).toBeGreaterThanOrEqual(0);
    expect(service.index!.size).toBe(after.overlapBlocks);
    await service.stop();
  });

  it("takes router events, tokens given directly, and splits tokenization from routing", async () => {
    const service = await simulator();
    for (const id of [1n, 2n, 3n]) service.addWorker({ id });
    const tokens = Uint32Array.from({ length: 4 * BS }, (_, i) => i + 7);
    const local = computeBlockHashes(tokens, BS);
    const engine = computeSequenceHashes(local);
    service.applyEvent(
      RouterEvents.stored(
        { workerId: 3n, dpRank: 0 },
        0n,
        null,
        Array.from(local, (tokensHash, i) => ({ blockHash: engine[i]!, tokensHash })),
      ),
    );
    const tokenized = await service.tokenize({ tokens });
    expect(tokenized).toMatchObject({ injectable: true, tokenizeMs: 0 });
    const decision = service.routeTokenized({ tokens, requestId: "r-1" }, tokenized);
    expect(decision).toMatchObject({
      bookingId: "r-1",
      worker: { workerId: 3n },
      overlapBlocks: 4,
      endpoint: undefined,
    });
    expect(decision.explain.decode.find((c) => c.chosen)?.reason).toMatch(/lowest cost/);
    await expectError(() => service.routeTokenized({ tokens, requestId: "r-1" }, tokenized), DuplicateRequestError);
    expect(service.free("r-1")).toBe(true);
    expect(service.free("r-1")).toBe(false);
    await service.stop();
  });

  it("answers every failure with a typed error an endpoint picker maps to a status", async () => {
    const waiting = await simulator({ minInitialWorkers: 2 });
    waiting.addWorker({ id: 1n });
    expect(waiting.ready).toBe(false);
    expect(waiting.status().waitingFor).toMatch(/DYN_ROUTER_MIN_INITIAL_WORKERS/);
    const notReady = await expectError(() => waiting.route({ tokens: [1, 2, 3] }), NotReadyError);
    expect(notReady.httpStatus).toBe(503);
    await waiting.stop();

    const service = await simulator({ busyThreshold: 0.5 });
    service.addWorker({ id: 1n, httpEndpoint: "10.0.0.1:8000", capacity: { totalKvBlocks: 8 } });
    const invalid = await expectError(() => service.route({ body: "{not json" }), InvalidRequestError);
    expect(invalid.httpStatus).toBe(400);
    await expectError(() => service.route({ body: { model: "m" } }), InvalidRequestError);
    await expectError(() => service.route({ body: { messages: "hello" } }), InvalidRequestError);
    const subset = await expectError(
      () => service.route({ tokens: [1, 2, 3], allowedEndpoints: ["10.9.9.9:8000"] }),
      NoCandidatesError,
    );
    expect(subset.message).toMatch(/subset hint/);
    // The bare IP of a hint entry matches the worker whatever the port.
    expect((await service.route({ tokens: [1], allowedEndpoints: ["10.0.0.1"], queryOnly: true })).endpoint).toBe(
      "10.0.0.1:8000",
    );
    await service.route({ tokens: Array.from({ length: 5 * BS }, (_, i) => i) }); // 5 of 8 blocks: over 0.5
    const busy = await expectError(() => service.route({ tokens: [9, 9, 9] }), OverloadedError);
    expect(busy.httpStatus).toBe(503);
    await service.stop();

    const disagg = await simulator({ enforceDisagg: true });
    disagg.addWorker({ id: 1n, role: "decode" });
    await expectError(() => disagg.route({ tokens: [1, 2] }), PrefillUnavailableError);
    await disagg.stop();

    const strictTokenizers = new TokenizerRegistry({ threads: 1, defaultModel: null });
    const strict = await RouterService.start({ router: { blockSize: BS }, tokenizer: strictTokenizers });
    strict.addWorker({ id: 1n });
    const unknown = await expectError(() => strict.route({ body: chat("hi") }), UnknownModelError);
    expect(unknown.httpStatus).toBe(404);
    await strict.stop();
    await strictTokenizers.close();
  });

  it("registers the tokenizer of a worker's model card and tokenizes that model's requests with it", async () => {
    const service = await simulator();
    const dir = embeddedModelDirectory("llama3");
    service.addWorker({
      id: 1n,
      modelName: "meta-llama/Llama-3.1-8B-Instruct",
      modelCard: {
        files: {
          "tokenizer.json": { kind: "path", path: join(dir, "tokenizer.json") },
          "tokenizer_config.json": { kind: "path", path: join(dir, "tokenizer_config.json") },
        },
      },
    });
    await service.whenReady(10_000);
    const body = { model: "meta-llama/Llama-3.1-8B-Instruct", messages: [{ role: "user", content: "Hello there" }] };
    const llama = await service.tokenize({ body });
    expect(llama.model).toBe("meta-llama/Llama-3.1-8B-Instruct");
    const reference = await (await tokenizers.get("default")).tokenizeRequest("chat", body);
    expect([...llama.tokens]).not.toEqual([...reference.tokenIds]); // not the Qwen3 default
    expect(llama.tokens[0]).toBe(128000); // Llama 3's <|begin_of_text|>
    // A model no card covers falls back to the default tokenizer.
    expect((await service.tokenize({ body: { ...body, model: "unknown/model" } })).model).toBe("default");
    await service.stop();
  });

  it("tokenizes a body given as text from its raw JSON: numbers render as the engine parses them", async () => {
    const service = await simulator();
    service.addWorker({ id: 1n });
    // `1.0` and `1` differ only in the text: the chat template dumps the tool parameters with tojson.
    const text = JSON.stringify({
      model: "Qwen/Qwen3-0.6B",
      messages: [{ role: "user", content: "Scale it" }],
      tools: [{ type: "function", function: { name: "scale", parameters: { factor: { default: 1 } } } }],
    }).replace('"default":1', '"default":1.0');
    const parsed = JSON.parse(text) as unknown;
    const qwen = await tokenizers.get("default");
    const fromText = await qwen.tokenizeRequest("chat", text);
    const fromParsed = await qwen.tokenizeRequest("chat", parsed);
    expect([...fromText.tokenIds]).not.toEqual([...fromParsed.tokenIds]);
    for (const request of [{ body: text }, { body: Buffer.from(text) }, { body: text, parsedBody: parsed }]) {
      expect([...(await service.tokenize(request)).tokens]).toEqual([...fromText.tokenIds]);
    }
    expect([...(await service.tokenize({ body: parsed })).tokens]).toEqual([...fromParsed.tokenIds]);
    await service.stop();
  });

  it("lifts routing hints from the body: cache namespace, expected output length, priority", async () => {
    const service = await simulator();
    service.addWorker({ id: 1n });
    service.addWorker({ id: 2n });
    const body = { ...chat(longText("salted")), nvext: { cache_salt: "tenant-a", agent_hints: { priority: 3 } } };
    const first = await service.route({ body });
    expect(first.priority).toBe(3);
    // The worker caches the prompt under the tenant's salt: only requests of that tenant match it.
    const batch = storedBatch(first.tokens, 900n);
    const stored = batch.events[0] as VllmBlockStored;
    service.applyVllmEvents({ workerId: 2n, dpRank: 0 }, { ...batch, events: [{ ...stored, cacheSalt: "tenant-a" }] });
    service.free(first.bookingId);
    expect((await service.route({ body, queryOnly: true })).overlapBlocks).toBeGreaterThan(0);
    expect((await service.route({ body: chat(longText("salted")), queryOnly: true })).overlapBlocks).toBe(0);
    await expectError(
      () => service.route({ body: { ...body, nvext: { agent_hints: { osl: "long" } } } }),
      InvalidRequestError,
    );
    await service.stop();
  });

  it("removes a worker from candidates, index and bookings in one step", async () => {
    const service = await simulator();
    service.addWorker({ id: 1n });
    service.addWorker({ id: 2n });
    const tokens = Uint32Array.from({ length: 6 * BS }, (_, i) => 100 + i);
    service.applyVllmEvents({ workerId: 1n, dpRank: 0 }, storedBatch(tokens, 10n));
    const d = await service.route({ tokens });
    expect(d.worker.workerId).toBe(1n);
    expect(service.status().activeBookings).toBe(1);
    service.removeWorker(1n);
    expect(service.index!.size).toBe(0);
    expect(service.status()).toMatchObject({ activeBookings: 0, workers: 1 });
    expect(service.markPrefillComplete(d.bookingId)).toBe(false);
    const next = await service.route({ tokens });
    expect(next).toMatchObject({ worker: { workerId: 2n }, overlapBlocks: 0 });
    await service.stop();
  });

  it("runs on the injected clock: bookings expire in virtual time", async () => {
    const clock = { now: 0 };
    const service = await simulator({ activeRequestExpirySecs: 60 }, clock);
    service.addWorker({ id: 1n });
    const d = await service.route({ tokens: Array.from({ length: 2 * BS }, (_, i) => i) });
    expect(service.status().activeBookings).toBe(1);
    clock.now += 61_000;
    expect(service.router!.expireStale()).toEqual([d.bookingId]);
    expect(service.status().activeBookings).toBe(0);
    await service.stop();
  });

  it("refuses workers whose KV block size differs from the router's", async () => {
    const lines: string[] = [];
    const service = await RouterService.start({
      router: { blockSize: BS },
      tokenizer: false,
      log: (l) => lines.push(l),
    });
    service.addWorker({ id: 1n, blockSize: 32, name: "odd-one" });
    service.addWorker({ id: 2n, blockSize: BS });
    expect(service.status()).toMatchObject({ workers: 1, refusedWorkers: 1, blockSize: BS });
    expect(lines.join("\n")).toMatch(/odd-one.*block size 32, the router 16/);
    await expectError(() => service.route({ body: chat("hi") }), InvalidRequestError);
    await service.stop();
  });

  // Before: a configured DYN_KV_CACHE_BLOCK_SIZE that disagreed with the card only refused the workers
  // (zero overlap, silently routable nowhere) and events of another block size were only rate-limit
  // logged. After: the service refuses to start naming both values, and foreign-size events are
  // counted per worker and logged once per worker.
  it("fails at start when DYN_KV_CACHE_BLOCK_SIZE disagrees with the model card, and takes the card's otherwise", async () => {
    const workers = (size: number) =>
      new StaticDiscovery({
        text: `workers:\n  - { name: card-worker, http: "10.0.0.1:8000", blockSize: ${size} }\n`,
        sourceName: "test",
      });
    const failed = RouterService.start({
      router: { blockSize: BS },
      tokenizer: false,
      discovery: workers(32),
      settings: { eventPlane: "none" },
    });
    await expect(failed).rejects.toBeInstanceOf(BlockSizeMismatchError);
    await expect(failed).rejects.toThrow(/DYN_KV_CACHE_BLOCK_SIZE=16 .*card-worker .*: 32/);
    const fromCard = await RouterService.start({
      tokenizer: false,
      discovery: workers(32),
      settings: { eventPlane: "none" },
    });
    expect(fromCard.status()).toMatchObject({ blockSize: 32, workers: 1 });
    await fromCard.stop();
  });

  it("counts events per worker (applied, rejected, foreign block size) and logs a foreign block size once", async () => {
    const lines: string[] = [];
    const service = await RouterService.start({
      router: { blockSize: BS },
      tokenizer: false,
      log: (l) => lines.push(l),
    });
    service.addWorker({ id: 1n });
    service.addWorker({ id: 2n });
    const tokens = Array.from({ length: 4 * BS }, (_, i) => i);
    service.applyVllmEvents({ workerId: 1n, dpRank: 0 }, storedBatch(tokens, 100n));
    for (let i = 0; i < 3; i++)
      service.applyVllmEvents({ workerId: 2n, dpRank: 0 }, storedBlocks(tokens, 2 * BS, 200n));
    service.applyEvent(RouterEvents.stored({ workerId: 1n, dpRank: 0 }, 1n, 999n, [{ blockHash: 5n, tokensHash: 6n }]));
    const byWorker = new Map(service.status().workerEvents.map((w) => [w.workerId, w]));
    expect(byWorker.get(1n)).toMatchObject({ applied: 1, rejected: 1, wrongBlockSize: 0 });
    expect(byWorker.get(2n)).toMatchObject({ applied: 0, wrongBlockSize: 3 });
    expect(
      lines.filter((l) => /worker 2 publishes KV blocks of 32 tokens but the router uses 16/.test(l)),
    ).toHaveLength(1);
    await service.stop();
  });

  it("hands every booking change to the replica-sync hook and applies another replica's", async () => {
    const sent: ActiveSequenceEvent[] = [];
    const a = await RouterService.start({
      router: { blockSize: BS },
      tokenizer: false,
      onBookingChange: (e) => sent.push(e),
    });
    const b = await RouterService.start({ router: { blockSize: BS }, tokenizer: false });
    for (const s of [a, b]) s.addWorker({ id: 1n });
    const d = await a.route({ tokens: Array.from({ length: 3 * BS }, (_, i) => i), requestId: "x" });
    a.markPrefillComplete(d.bookingId);
    a.free(d.bookingId);
    expect(sent.map((e) => e.data.type)).toEqual(["add_request", "mark_prefill_completed", "free"]);
    expect(b.applyBookingChange(sent[0]!)).toBe(true);
    expect(b.router!.load({ workerId: 1n, dpRank: 0 })).toMatchObject({ activeRequests: 1, activeBlocks: 3 });
    b.applyBookingChange(sent[2]!);
    expect(b.router!.load({ workerId: 1n, dpRank: 0 })).toMatchObject({ activeRequests: 0 });
    await Promise.all([a.stop(), b.stop()]);
  });
});
