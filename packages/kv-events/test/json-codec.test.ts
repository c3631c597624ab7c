import { describe, expect, it } from "vitest";
import { RouterEvents, type RouterEvent } from "@dynamo/kv-indexer";
import { RouterEventDecodeError, decodeRouterEventJson, encodeRouterEventJson } from "../src/index.js";

const BIG = (1n << 64n) - 5n; // above 2^63
const worker = { workerId: 7587888160958628000n, dpRank: 0 };

describe("router event JSON codec", () => {
  it("accepts the reference JSON shape with bare integers", () => {
    const text =
      '{"worker_id": 7587888160958628000, "storage_tier": "device", "event": {"event_id": 42, "dp_rank": 0,' +
      ' "data": {"stored": {"parent_hash": 111, "start_position": null, "blocks": [{"block_hash": 222, "tokens_hash": 333, "mm_extra_info": null}]}}}}';
    const event = decodeRouterEventJson(text);
    expect(event.workerId).toBe(7587888160958628000n);
    expect(event.eventId).toBe(42n);
    expect(event.storageTier).toBe("device");
    expect(event.data).toMatchObject({ type: "stored", parentHash: 111n, startPosition: null });
    if (event.data.type !== "stored") throw new Error("unreachable");
    expect([...event.data.blockHashes]).toEqual([222n]);
    expect([...event.data.tokensHashes]).toEqual([333n]);
  });

  it("round-trips values above 2^63 without precision loss", () => {
    const events: RouterEvent[] = [
      RouterEvents.stored({ workerId: BIG, dpRank: 3 }, BIG - 1n, BIG - 2n, [{ blockHash: BIG, tokensHash: BIG - 7n }]),
      RouterEvents.removed(worker, 5n, [BIG, 1n]),
      RouterEvents.cleared(worker, 6n, "host_pinned"),
    ];
    for (const event of events) {
      const text = encodeRouterEventJson(event);
      expect(text).toContain(event.workerId.toString());
      expect(decodeRouterEventJson(text)).toEqual(event);
    }
    expect(encodeRouterEventJson(events[0]!)).toContain(`"block_hash":${BIG}`);
  });

  it("writes removed and cleared in the serde shape", () => {
    expect(encodeRouterEventJson(RouterEvents.cleared(worker, 1n))).toBe(
      '{"worker_id":7587888160958628000,"storage_tier":"device","event":{"event_id":1,"dp_rank":0,"data":"cleared"}}',
    );
    expect(encodeRouterEventJson(RouterEvents.removed(worker, 2n, [222n]))).toContain(
      '"data":{"removed":{"block_hashes":[222]}}',
    );
  });

  it("reinterprets negative (signed i64) block hashes as unsigned", () => {
    const text = '{"worker_id":1,"event":{"event_id":0,"data":{"removed":{"block_hashes":[-1]}}}}';
    const event = decodeRouterEventJson(text);
    expect(event.dpRank).toBe(0);
    expect(event.storageTier).toBe("device");
    if (event.data.type !== "removed") throw new Error("unreachable");
    expect(event.data.blockHashes[0]).toBe((1n << 64n) - 1n);
  });

  it("rejects malformed documents with the field path", () => {
    expect(() => decodeRouterEventJson("{")).toThrow(RouterEventDecodeError);
    expect(() => decodeRouterEventJson('{"worker_id":-1,"event":{"event_id":0,"data":"cleared"}}')).toThrow(
      /\$\.worker_id/,
    );
    expect(() => decodeRouterEventJson('{"worker_id":1,"event":{"event_id":0,"data":{"bogus":{}}}}')).toThrow(
      /unknown event kind/,
    );
    expect(() =>
      decodeRouterEventJson('{"worker_id":1,"event":{"event_id":0,"data":{"stored":{"blocks":[{"block_hash":1}]}}}}'),
    ).toThrow(/tokens_hash/);
    expect(() =>
      decodeRouterEventJson('{"worker_id":1,"storage_tier":"tape","event":{"event_id":0,"data":"cleared"}}'),
    ).toThrow(/storage_tier/);
  });
});
