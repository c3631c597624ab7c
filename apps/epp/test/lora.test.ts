import { DESTINATION_ENDPOINT_KEY } from "@dynamo/ext-proc";
import type { VllmBlockStored } from "@dynamo/kv-events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  MODEL,
  closeSharedTokenizer,
  expectFreed,
  idOf,
  respond,
  seedRequest,
  send,
  sharedTokenizer,
  startEpp,
  storedBatch,
  type TestEpp,
} from "./support.js";

afterAll(closeSharedTokenizer);

const WORKERS = [
  { name: "w1", http: "127.0.0.1:8001" },
  { name: "w2", http: "127.0.0.2:8002" },
];

describe("LoRA adapter requests through the endpoint picker", () => {
  let t: TestEpp;
  beforeAll(async () => {
    t = await startEpp({ workers: WORKERS, tls: false });
  });
  afterAll(() => t.close());

  // Before: `model: "a"` was routed as a base-model request and followed worker 2's base blocks.
  it("routes a request for adapter a to the worker whose events carry it, not to the base-model blocks", async () => {
    const tk = await sharedTokenizer().get(MODEL);
    const tokens = (await tk.tokenizeRequest("chat", JSON.stringify(seedRequest()))).tokenIds;
    const adapterRun = { ...(storedBatch(tokens, 1000n).events[0] as VllmBlockStored), loraName: "a" };
    t.epp.service.applyVllmEvents(
      { workerId: idOf("w1"), dpRank: 0 },
      { ts: 0, dataParallelRank: 0, events: [adapterRun] },
    );
    t.epp.service.applyVllmEvents({ workerId: idOf("w2"), dpRank: 0 }, storedBatch(tokens, 2000n));

    const base = await send(t.client, seedRequest());
    expect(base.result.type === "continue" && base.result.headers.get(DESTINATION_ENDPOINT_KEY)).toBe("127.0.0.2:8002");
    await respond(base.exchange);
    const adapter = await send(t.client, seedRequest({ model: "a" }));
    expect(adapter.result.type).toBe("continue");
    if (adapter.result.type !== "continue") return;
    expect(adapter.result.headers.get(DESTINATION_ENDPOINT_KEY)).toBe("127.0.0.1:8001");
    expect((JSON.parse(adapter.result.body!.toString()) as { model: string }).model).toBe("a");
    await respond(adapter.exchange);
    await expectFreed(t);
  });
});
