import type { VllmBlockStored } from "@dynamo/kv-events";
import { TokenizerRegistry } from "@dynamo/tokenizer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RouterService } from "../src/index.js";
import { BS, storedBatch } from "./support/cluster.js";

let tokenizers: TokenizerRegistry;
beforeAll(() => {
  tokenizers = new TokenizerRegistry({ threads: 1 });
});
afterAll(async () => {
  await tokenizers.close();
});

const MODEL = "Qwen/Qwen3-0.6B";
const text = Array.from({ length: 30 }, (_, i) => `adapter paragraph ${i}: routing by cached prefixes.`).join(" ");
const chat = (model: string) => ({ model, messages: [{ role: "user", content: text }] });

/** Two workers of one base model: worker 1 has cached the prompt under adapter `a`, worker 2 without an adapter. */
async function twoWorkers() {
  const service = await RouterService.start({ router: { blockSize: BS, rng: () => 0 }, tokenizer: tokenizers });
  service.addWorker({ id: 1n, httpEndpoint: "10.0.0.1:8000", modelName: MODEL });
  service.addWorker({ id: 2n, httpEndpoint: "10.0.0.2:8000", modelName: MODEL });
  const { tokens } = await service.tokenize({ body: chat(MODEL) });
  const batch = storedBatch(tokens, 100n);
  const stored = { ...(batch.events[0] as VllmBlockStored), loraName: "a" };
  service.applyVllmEvents({ workerId: 1n, dpRank: 0 }, { ...batch, events: [stored] });
  service.applyVllmEvents({ workerId: 2n, dpRank: 0 }, storedBatch(tokens, 200n));
  return { service, blocks: Math.floor(tokens.length / BS) };
}

describe("LoRA adapters named by the request's model", () => {
  // Before: `model: "a"` was tokenized with the default tokenizer and routed as a base-model request:
  // it matched worker 2's base blocks and went there, a worker that does not serve the adapter.
  it("base and adapter requests with the same text never credit each other's blocks", async () => {
    const { service, blocks } = await twoWorkers();
    const base = await service.route({ body: chat(MODEL), queryOnly: true });
    expect(base).toMatchObject({ endpoint: "10.0.0.2:8000", overlapBlocks: blocks });
    expect(base.explain.decode.find((c) => c.workerId === 1n)!.overlapBlocks).toBe(0);
    const adapter = await service.route({ body: chat("a"), queryOnly: true });
    expect(adapter).toMatchObject({ endpoint: "10.0.0.1:8000", overlapBlocks: blocks });
    expect(adapter.explain.decode.map((c) => c.workerId)).toEqual([1n]);
    expect([...adapter.tokens]).toEqual([...base.tokens]); // tokenized with the base model's tokenizer
    // Ids tokenized elsewhere (a remote tokenizer) with the body: the body's model still names the adapter.
    expect(await service.tokenize({ body: chat("a"), tokens: base.tokens })).toMatchObject({ loraName: "a" });
    await service.stop();
  });

  it("an adapter no worker holds goes to the cheapest worker with the load penalty, which then holds it", async () => {
    const { service } = await twoWorkers();
    // Worker 1 served adapter b, then restarted: b is known, but no worker holds it now.
    const { tokens } = await service.tokenize({ body: chat(MODEL) });
    const stored = { ...(storedBatch(tokens, 300n).events[0] as VllmBlockStored), loraName: "b" };
    service.applyVllmEvents({ workerId: 1n, dpRank: 0 }, { ts: 0, dataParallelRank: 0, events: [stored] });
    expect(service.router!.adaptersOf(1n)).toEqual(["a", "b"]);
    service.removeWorker(1n);
    service.addWorker({ id: 1n, httpEndpoint: "10.0.0.1:8000", modelName: MODEL });
    expect(service.router!.adaptersOf(1n)).toEqual([]);
    // Load on worker 2 (a long prompt in prefill): worker 1 is the cheaper one.
    await service.route({ tokens: Array.from({ length: 64 * BS }, (_, i) => 7 + i), pinned: { workerId: 2n } });
    const d = await service.route({ body: chat("b") });
    expect(d).toMatchObject({ endpoint: "10.0.0.1:8000", overlapBlocks: 0 });
    const penalty = 4096 / BS; // DYN_ROUTER_LORA_LOAD_PENALTY_TOKENS default, in cost units
    const plain = await service.route({
      body: { ...chat(MODEL), messages: [{ role: "user", content: "x" }] },
      queryOnly: true,
    });
    expect(d.explain.decode.every((c) => c.cost >= penalty)).toBe(true);
    expect(plain.explain.decode.every((c) => c.cost < penalty)).toBe(true);
    expect(service.router!.adaptersOf(1n)).toEqual(["b"]);
    expect((await service.route({ body: chat("b"), queryOnly: true })).explain.decode.map((c) => c.workerId)).toEqual([
      1n,
    ]);
    await service.stop();
  });
});
