import { decode, encode } from "@msgpack/msgpack";
import { describe, expect, it } from "vitest";
import { VllmDecodeError, decodeVllmEventBatch, encodeVllmEventBatch, type VllmEventBatch } from "../src/index.js";

const raw = (value: unknown) => encode(value, { useBigInt64: true });
const rawDecode = (bytes: Uint8Array) => decode(bytes, { useBigInt64: true });
const tokens = Array.from({ length: 32 }, (_, i) => i);
const BIG = 0xfedc_ba98_7654_3210n; // above 2^63

describe("decodeVllmEventBatch: array (legacy) encoding", () => {
  it("decodes the reference example with positions 1..7 and a rank", () => {
    const batch = decodeVllmEventBatch(
      raw([1718000000.12, [["BlockStored", [1, 2], null, tokens, 16, null, "GPU", null]], 0]),
    );
    expect(batch.ts).toBeCloseTo(1718000000.12);
    expect(batch.dataParallelRank).toBe(0);
    expect(batch.events).toHaveLength(1);
    const stored = batch.events[0]!;
    expect(stored).toMatchObject({
      type: "BlockStored",
      blockHashes: [1n, 2n],
      parentBlockHash: null,
      blockSize: 16,
      medium: "GPU",
      loraName: null,
    });
    expect(stored.type === "BlockStored" && stored.tokenIds).toEqual(tokens);
  });

  it("accepts a batch without the trailing rank and events without trailing optional fields", () => {
    const batch = decodeVllmEventBatch(
      raw([
        1.5,
        [
          ["BlockStored", [7], 3, tokens.slice(0, 16), 16, null],
          ["BlockRemoved", [7]],
        ],
      ]),
    );
    expect(batch.dataParallelRank).toBeNull();
    expect(batch.events[0]).toMatchObject({
      type: "BlockStored",
      parentBlockHash: 3n,
      medium: null,
      loraName: null,
      extraKeys: null,
    });
    expect(batch.events[1]).toMatchObject({ type: "BlockRemoved", blockHashes: [7n], medium: null });
  });

  it("reads every later field by position and ignores elements past the known ones", () => {
    const event = [
      "BlockStored",
      [1],
      null,
      tokens.slice(0, 16),
      16,
      3,
      "CPU",
      "alice",
      [["alice"]],
      1,
      "full_attention",
      128,
      "future",
    ];
    const batch = decodeVllmEventBatch(
      raw([0, [event, ["BlockRemoved", [1], "CPU", 1, "full_attention", null, "future"]], 2]),
    );
    expect(batch.events[0]).toMatchObject({
      loraId: 3,
      medium: "CPU",
      loraName: "alice",
      extraKeys: [["alice"]],
      groupIdx: 1,
      kvCacheSpecKind: "full_attention",
      kvCacheSpecSlidingWindow: 128,
    });
    expect(batch.events[1]).toMatchObject({
      type: "BlockRemoved",
      medium: "CPU",
      groupIdx: 1,
      kvCacheSpecKind: "full_attention",
    });
    expect(batch.dataParallelRank).toBe(2);
  });

  it("decodes AllBlocksCleared with and without extra elements", () => {
    const batch = decodeVllmEventBatch(raw([0, [["AllBlocksCleared"], ["AllBlocksCleared", "source"]]]));
    expect(batch.events).toEqual([{ type: "AllBlocksCleared" }, { type: "AllBlocksCleared" }]);
  });
});

describe("decodeVllmEventBatch: map encoding", () => {
  it("decodes map events inside a positional batch", () => {
    const batch = decodeVllmEventBatch(
      raw([
        0,
        [
          {
            type: "BlockStored",
            block_hashes: [5],
            parent_block_hash: null,
            token_ids: tokens.slice(0, 16),
            block_size: 16,
            medium: "GPU",
          },
        ],
        0,
      ]),
    );
    expect(batch.events[0]).toMatchObject({ type: "BlockStored", blockHashes: [5n], medium: "GPU", loraName: null });
  });

  it("decodes a map batch with map events, unknown keys ignored, Dynamo extras read", () => {
    const batch = decodeVllmEventBatch(
      raw({
        ts: 2.5,
        events: [
          {
            type: "BlockStored",
            block_hashes: [5],
            parent_block_hash: 4,
            token_ids: tokens.slice(0, 16),
            block_size: 16,
            lora_name: "a",
            cache_salt: "tenant",
            locality: "LOCAL",
            brand_new_field: { x: 1 },
          },
          { type: "BlockRemoved", block_hashes: [5], medium: "GPU", something_else: 1 },
          { type: "AllBlocksCleared" },
        ],
        data_parallel_rank: 1,
        unknown_batch_key: true,
      }),
    );
    expect(batch.ts).toBe(2.5);
    expect(batch.dataParallelRank).toBe(1);
    expect(batch.events.map((e) => e.type)).toEqual(["BlockStored", "BlockRemoved", "AllBlocksCleared"]);
    expect(batch.events[0]).toMatchObject({
      parentBlockHash: 4n,
      loraName: "a",
      cacheSalt: "tenant",
      locality: "LOCAL",
    });
  });

  it("decodes positional events inside a map batch", () => {
    const batch = decodeVllmEventBatch(raw({ ts: 1, events: [["BlockRemoved", [9], "GPU"]] }));
    expect(batch.events).toMatchObject([{ type: "BlockRemoved", blockHashes: [9n] }]);
    expect(batch.dataParallelRank).toBeNull();
  });
});

describe("decodeVllmEventBatch: block hash value types", () => {
  it("keeps uint64 values above 2^63 exact", () => {
    const payload = raw([0, [["BlockRemoved", [BIG, (1n << 64n) - 1n]]]]);
    expect(payload.includes(0xcf)).toBe(true); // msgpack uint 64 tag
    expect(decodeVllmEventBatch(payload).events[0]).toMatchObject({ blockHashes: [BIG, (1n << 64n) - 1n] });
  });

  it("reinterprets negative int64 values as unsigned", () => {
    const batch = decodeVllmEventBatch(raw([0, [["BlockRemoved", [-1n, -2, BigInt.asIntN(64, BIG)]]]]));
    expect(batch.events[0]).toMatchObject({ blockHashes: [(1n << 64n) - 1n, (1n << 64n) - 2n, BIG] });
  });

  it("takes the last 8 bytes big-endian of bytes hashes and left-pads shorter ones", () => {
    const sha = new Uint8Array(32).fill(0xaa);
    sha.set([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08], 24);
    const short = new Uint8Array([0x01, 0x00]);
    const batch = decodeVllmEventBatch(
      raw([0, [["BlockStored", [sha], short, tokens.slice(0, 16), 16, null, null, null]]]),
    );
    expect(batch.events[0]).toMatchObject({ blockHashes: [0x0102030405060708n], parentBlockHash: 0x0100n });
  });

  it("normalises small integers (msgpack fixint, uint8/16/32) to bigint", () => {
    const batch = decodeVllmEventBatch(raw([0, [["BlockRemoved", [0, 127, 255, 65_535, 4_294_967_295]]]]));
    expect(batch.events[0]).toMatchObject({ blockHashes: [0n, 127n, 255n, 65_535n, 4_294_967_295n] });
  });
});

describe("decodeVllmEventBatch: unknown and bad input", () => {
  it("skips unknown tags and counts them", () => {
    const batch = decodeVllmEventBatch(raw([0, [["Ignored", 1, 2], { type: "SomethingNew" }, ["BlockRemoved", [1]]]]));
    expect(batch.unknownEvents).toBe(2);
    expect(batch.events).toHaveLength(1);
  });

  it("decodes a BlockStored without token ids (nil, absent, or vLLM's offloading connector's empty list) instead of rejecting it", () => {
    const batch = decodeVllmEventBatch(
      raw([
        0,
        [
          ["BlockStored", [1, 2], null, null, null, null, "CPU", null],
          { type: "BlockStored", block_hashes: [3], parent_block_hash: null, medium: "CPU" },
          ["BlockStored", [4], null, [], 0, null, "CPU", null],
          ["BlockStored", [5], null, "not-a-list", 16, null, "CPU", null],
          ["BlockStored", [6], null, [1, 2], null, null, "GPU", null],
        ],
      ]),
    );
    expect(batch.events).toMatchObject([
      { type: "BlockStored", blockHashes: [1n, 2n], tokenIds: null, blockSize: null, medium: "CPU" },
      { type: "BlockStored", blockHashes: [3n], tokenIds: null, blockSize: null },
      { type: "BlockStored", blockHashes: [4n], tokenIds: [], blockSize: 0 },
    ]);
    expect(batch.invalidEvents).toBe(2); // token ids of the wrong type, and token ids without a block size
    expect(batch.firstInvalidReason).toContain("token_ids");
  });

  // Before: token 2^32 + 5 (a 64-bit msgpack integer) was accepted and wrapped to 5 in the hashing
  // Uint32Array, and a store with token ids but no block hashes became an empty store using up an id.
  it("rejects token ids of 2^32 and above sent as 64-bit integers, and stores with tokens but no block hashes", () => {
    const batch = decodeVllmEventBatch(
      raw([
        0,
        [
          ["BlockStored", [1], null, [...tokens.slice(0, 15), 2n ** 32n + 5n], 16, null, "GPU", null],
          ["BlockStored", [2], null, [...tokens.slice(0, 15), 2n ** 40n], 16, null, "GPU", null],
          ["BlockStored", [], null, tokens.slice(0, 16), 16, null, "GPU", null],
          ["BlockStored", [3], null, [...tokens.slice(0, 15), 0xffffffffn], 16, null, "GPU", null],
        ],
      ]),
    );
    expect(batch.invalidEvents).toBe(3);
    expect(batch.firstInvalidReason).toBe("token_ids[15]: not a u32 token id: 4294967301");
    expect(batch.events).toMatchObject([{ type: "BlockStored", blockHashes: [3n] }]);
    expect(batch.events[0]!.type === "BlockStored" && batch.events[0]!.tokenIds![15]).toBe(0xffffffff);
  });

  it("drops events with badly typed fields, keeps the rest, reports the first reason", () => {
    const batch = decodeVllmEventBatch(
      raw([
        0,
        [
          ["BlockStored", "not-a-list", null, [], 16, null, null, null],
          ["BlockRemoved", [1.5]],
          ["BlockRemoved", [2]],
          42,
          [7],
        ],
      ]),
    );
    expect(batch.invalidEvents).toBe(4);
    expect(batch.firstInvalidReason).toContain("block_hashes");
    expect(batch.events).toMatchObject([{ type: "BlockRemoved", blockHashes: [2n] }]);
  });

  it.each([
    ["not msgpack", new Uint8Array([0xc1])],
    ["truncated msgpack", raw([0, [["BlockRemoved", [1, 2, 3]]]]).slice(0, 6)],
    ["a scalar", raw(42)],
    ["events not a list", raw([0, "events"])],
    ["a map batch without events", raw({ ts: 1 })],
    ["a non-integer rank", raw([0, [], "zero"])],
    ["empty payload", new Uint8Array(0)],
  ])("throws VllmDecodeError for %s", (_name, payload) => {
    expect(() => decodeVllmEventBatch(payload)).toThrow(VllmDecodeError);
  });
});

describe("encodeVllmEventBatch", () => {
  const batch: VllmEventBatch = {
    ts: 12.25,
    dataParallelRank: 3,
    events: [
      {
        type: "BlockStored",
        blockHashes: [BIG, 5n],
        parentBlockHash: 1n << 63n,
        tokenIds: tokens,
        blockSize: 16,
        loraId: null,
        medium: "GPU",
        loraName: "lora",
      },
      {
        type: "BlockStored",
        blockHashes: [6n],
        parentBlockHash: null,
        tokenIds: tokens.slice(0, 16),
        blockSize: 16,
        groupIdx: 2,
        cacheSalt: "s",
      },
      { type: "BlockRemoved", blockHashes: [BIG], medium: "GPU" },
      { type: "AllBlocksCleared" },
    ],
  };

  for (const eventEncoding of ["array", "map"] as const) {
    for (const batchEncoding of ["array", "map"] as const) {
      for (const hashEncoding of ["uint", "int64", "bytes"] as const) {
        it(`round-trips events=${eventEncoding} batch=${batchEncoding} hashes=${hashEncoding}`, () => {
          const decoded = decodeVllmEventBatch(
            encodeVllmEventBatch(batch, { eventEncoding, batchEncoding, hashEncoding }),
          );
          expect(decoded.ts).toBe(12.25);
          expect(decoded.dataParallelRank).toBe(3);
          expect(decoded.events.map((e) => e.type)).toEqual(batch.events.map((e) => e.type));
          expect(decoded.events[0]).toMatchObject({
            blockHashes: [BIG, 5n],
            parentBlockHash: 1n << 63n,
            loraName: "lora",
            medium: "GPU",
          });
          expect(decoded.events[1]).toMatchObject({ blockHashes: [6n], parentBlockHash: null, groupIdx: 2 });
          expect(decoded.events[2]).toMatchObject({ blockHashes: [BIG] });
        });
      }
    }
  }

  it("omits trailing default fields in the array form like msgspec's omit_defaults", () => {
    const encoded = encodeVllmEventBatch({
      ts: 0,
      dataParallelRank: null,
      events: [batch.events[0]!, batch.events[2]!],
    });
    expect(decodeVllmEventBatch(encoded).dataParallelRank).toBeNull();
    // BlockStored keeps positions 1..7 (8 elements with the tag), BlockRemoved keeps 1..2.
    const root = rawDecode(encoded) as [number, unknown[][]];
    expect(root).toHaveLength(2);
    expect(root[1]![0]).toHaveLength(8);
    expect(root[1]![1]).toHaveLength(3);
  });

  it("writes the cache salt only in the map form and omits absent optional keys", () => {
    const encoded = encodeVllmEventBatch(
      { ts: 0, dataParallelRank: 0, events: [batch.events[1]!] },
      { eventEncoding: "map" },
    );
    const root = rawDecode(encoded) as [number, Array<Record<string, unknown>>];
    expect(Object.keys(root[1][0]!).sort()).toEqual(
      [
        "type",
        "block_hashes",
        "parent_block_hash",
        "token_ids",
        "block_size",
        "lora_id",
        "medium",
        "lora_name",
        "group_idx",
        "cache_salt",
      ].sort(),
    );
  });
});
