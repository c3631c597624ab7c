import { RadixIndex, computeBlockHashes, workerRankKey, type RouterEvent, type StoredData } from "@dynamo/kv-indexer";
import { describe, expect, it } from "vitest";
import {
  VllmEventTranslator,
  encodeVllmEventBatch,
  storageTierFromMedium,
  type VllmEventBatch,
  type VllmKvEvent,
} from "../src/index.js";

const BS = 4;
const tokens = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

function translator(extra: Partial<ConstructorParameters<typeof VllmEventTranslator>[0]> = {}) {
  const lines: string[] = [];
  const t = new VllmEventTranslator({ workerId: 7n, dpRank: 1, blockSize: BS, log: (l) => lines.push(l), ...extra });
  return { t, lines };
}

function batch(events: VllmKvEvent[], dataParallelRank: number | null = 1): VllmEventBatch {
  return { ts: 0, events, dataParallelRank };
}

function stored(data: RouterEvent["data"]): StoredData {
  if (data.type !== "stored") throw new Error(`expected stored, got ${data.type}`);
  return data;
}

const store = (
  hashes: bigint[],
  parent: bigint | null,
  toks: number[],
  extra: Partial<Extract<VllmKvEvent, { type: "BlockStored" }>> = {},
): VllmKvEvent => ({
  type: "BlockStored",
  blockHashes: hashes,
  parentBlockHash: parent,
  tokenIds: toks,
  blockSize: BS,
  medium: "GPU",
  ...extra,
});

describe("VllmEventTranslator", () => {
  it("recomputes router hashes from token ids, keeps engine hashes, numbers events from 0", () => {
    const { t } = translator();
    const out = t.translatePayload(
      encodeVllmEventBatch(batch([store([11n, 12n], null, tokens(8)), store([13n], 12n, tokens(4, 8))])),
    );
    expect(out.map((e) => e.eventId)).toEqual([0n, 1n]);
    expect(out.every((e) => e.workerId === 7n && e.dpRank === 1 && e.storageTier === "device")).toBe(true);
    const first = stored(out[0]!.data);
    expect(Array.from(first.blockHashes)).toEqual([11n, 12n]);
    expect(first.parentHash).toBeNull();
    // Dynamo's published vectors: tokens 0..3 and 4..7 at seed 1337.
    expect(Array.from(first.tokensHashes)).toEqual([9143094415614847814n, 12124091508212882195n]);
    expect(stored(out[1]!.data).parentHash).toBe(12n);
    expect(t.nextEventId).toBe(2n);
  });

  it("salts with the LoRA name and the cache salt (event field first, then the publisher default)", () => {
    const { t } = translator({ defaultCacheSalt: "tenant-a" });
    const [lora, salted, both] = t.translateBatch({
      ...batch([
        store([1n], null, tokens(4), { loraName: "adapter-a" }),
        store([2n], null, tokens(4)),
        store([3n], null, tokens(4), { loraName: "adapter-a", cacheSalt: "tenant-a" }),
      ]),
      unknownEvents: 0,
      invalidEvents: 0,
    });
    expect(stored(lora!.data).tokensHashes[0]).toBe(
      computeBlockHashes(tokens(4), BS, { loraName: "adapter-a", cacheSalt: "tenant-a" })[0],
    );
    expect(stored(salted!.data).tokensHashes[0]).toBe(17009624042690211646n);
    expect(stored(both!.data).tokensHashes[0]).toBe(8269515957840517240n);
  });

  it("maps removals and clears, with the medium as storage tier", () => {
    const { t } = translator();
    const out = t.translatePayload(
      encodeVllmEventBatch(
        batch([
          { type: "BlockRemoved", blockHashes: [5n, 6n], medium: "CPU" },
          { type: "AllBlocksCleared" },
          store([9n], null, tokens(4), { medium: "DISK" }),
        ]),
      ),
    );
    expect(out[0]).toMatchObject({ eventId: 0n, storageTier: "host_pinned", data: { type: "removed" } });
    expect(Array.from((out[0]!.data as { blockHashes: BigUint64Array }).blockHashes)).toEqual([5n, 6n]);
    expect(out[1]).toMatchObject({ eventId: 1n, data: { type: "cleared" } });
    expect(out[2]!.storageTier).toBe("disk");
  });

  it("maps media to tiers like Dynamo", () => {
    expect(
      [null, "GPU", "device", "CPU", "CPU_PINNED", "CPU_TIER2", "NVME", "NETWORK", "weird"].map(storageTierFromMedium),
    ).toEqual(["device", "device", "device", "host_pinned", "host_pinned", "disk", "disk", "external", "external"]);
  });

  it("indexes the correctly sized prefix of a store and warns once per interval", () => {
    const { t, lines } = translator();
    const short = t.translatePayload(encodeVllmEventBatch(batch([store([1n, 2n, 3n], null, tokens(10))])));
    expect(Array.from(stored(short[0]!.data).blockHashes)).toEqual([1n, 2n]);
    const wrongSize = t.translatePayload(
      encodeVllmEventBatch(batch([store([4n], null, tokens(8), { blockSize: 8 }), store([5n], null, tokens(4))])),
    );
    expect(wrongSize).toHaveLength(1);
    expect(stored(wrongSize[0]!.data).blockHashes[0]).toBe(5n);
    const tooLong = t.translatePayload(encodeVllmEventBatch(batch([store([6n], null, tokens(6))])));
    expect(tooLong).toHaveLength(0);
    expect(t.issues.wrong_block_size).toBe(3);
    expect(lines.filter((l) => l.includes("block_size"))).toHaveLength(1);
    expect(lines[0]).toContain("worker 7 dp_rank 1");
  });

  it("ignores stores repeating a hash or their parent", () => {
    const { t } = translator();
    const out = t.translatePayload(
      encodeVllmEventBatch(
        batch([store([1n, 1n], null, tokens(8)), store([2n, 3n], 3n, tokens(8)), store([4n], null, tokens(4))]),
      ),
    );
    expect(out).toHaveLength(1);
    expect(out[0]!.eventId).toBe(0n);
    expect(t.issues.duplicate_hashes).toBe(2);
  });

  it("treats parent 0 as the root only when configured for the publisher", () => {
    const zero = store([1n], 0n, tokens(4));
    expect(stored(translator().t.translatePayload(encodeVllmEventBatch(batch([zero])))[0]!.data).parentHash).toBe(0n);
    expect(
      stored(translator({ zeroParentIsRoot: true }).t.translatePayload(encodeVllmEventBatch(batch([zero])))[0]!.data)
        .parentHash,
    ).toBeNull();
  });

  it("drops batches of another rank, remote events, malformed payloads; counts unknown and invalid events", () => {
    const { t, lines } = translator();
    expect(t.translatePayload(encodeVllmEventBatch(batch([store([1n], null, tokens(4))], 0)))).toHaveLength(0);
    expect(t.translatePayload(encodeVllmEventBatch(batch([store([1n], null, tokens(4))], null)))).toHaveLength(1);
    expect(
      t.translatePayload(
        encodeVllmEventBatch(batch([store([2n], null, tokens(4), { locality: "REMOTE" })]), { eventEncoding: "map" }),
      ),
    ).toHaveLength(0);
    expect(t.translatePayload(new Uint8Array([0x93, 0x01]))).toHaveLength(0);
    expect(t.issues).toMatchObject({ rank_mismatch: 1, remote_locality: 1, malformed_payload: 1 });
    expect(lines.some((l) => l.includes("malformed") && l.includes("worker 7"))).toBe(true);
    expect(t.nextEventId).toBe(1n);
  });

  describe("BlockStored without token ids (a lower tier announcing blocks stored before)", () => {
    /** vLLM's offloading connector: no tokens, block size 0, no parent, the tier's medium. */
    const offload = (hashes: bigint[], medium = "CPU"): VllmKvEvent => ({
      type: "BlockStored",
      blockHashes: hashes,
      parentBlockHash: null,
      tokenIds: [],
      blockSize: 0,
      medium,
    });

    it("takes the router hashes and parents of its blocks from their earlier stores, one stored event per run of linked blocks", () => {
      const { t } = translator({ tokenlessStores: true });
      const [a, b] = t.translateBatch({
        ...batch([store([11n, 12n, 13n], null, tokens(12)), store([21n], 12n, tokens(4, 100))]),
        unknownEvents: 0,
        invalidEvents: 0,
      });
      const out = t.translatePayload(encodeVllmEventBatch(batch([offload([11n, 12n, 13n, 21n])])));
      expect(
        out.map((e) => [e.storageTier, stored(e.data).parentHash, Array.from(stored(e.data).blockHashes)]),
      ).toEqual([
        ["host_pinned", null, [11n, 12n, 13n]],
        ["host_pinned", 12n, [21n]],
      ]);
      expect(Array.from(stored(out[0]!.data).tokensHashes)).toEqual(Array.from(stored(a!.data).tokensHashes));
      expect(Array.from(stored(out[1]!.data).tokensHashes)).toEqual(Array.from(stored(b!.data).tokensHashes));
      // Applied to the host tier's index, the offloaded blocks match the prompts they belong to.
      const host = new RadixIndex({ storageTier: "host_pinned" });
      for (const e of out) host.apply(e);
      const branch = [...tokens(8), ...tokens(4, 100)];
      expect(host.findMatches(computeBlockHashes(branch, BS)).scores.get(workerRankKey(7n, 1))).toBe(3);
      expect(host.errorCounts.parent_not_found).toBe(0);
      expect(t.issues.unknown_tokens).toBe(0);
    });

    it("skips and counts blocks never stored with their tokens, keeping the known ones", () => {
      const { t, lines } = translator({ tokenlessStores: true });
      t.translateBatch({ ...batch([store([11n, 12n], null, tokens(8))]), unknownEvents: 0, invalidEvents: 0 });
      const out = t.translateBatch({ ...batch([offload([11n, 99n, 12n])]), unknownEvents: 0, invalidEvents: 0 });
      expect(out.map((e) => [stored(e.data).parentHash, Array.from(stored(e.data).blockHashes)])).toEqual([
        [null, [11n]],
        [11n, [12n]],
      ]);
      expect(t.issues.unknown_tokens).toBe(1);
      expect(lines.some((l) => l.includes("1 of 3 block(s) (first 99) were never stored with their tokens"))).toBe(
        true,
      );
    });

    it("without the quirk, remembers blocks from the first such store on", () => {
      const { t, lines } = translator();
      const translate = (events: VllmKvEvent[]) =>
        t.translateBatch({ ...batch(events), unknownEvents: 0, invalidEvents: 0 });
      translate([store([11n], null, tokens(4))]);
      expect(t.knownBlocks).toBe(0);
      expect(translate([offload([11n])])).toEqual([]); // stored before tracking began
      expect(t.issues.unknown_tokens).toBe(1);
      expect(lines.some((l) => l.includes("remembering stored blocks from now on"))).toBe(true);
      translate([store([31n], null, tokens(4, 50))]);
      expect(translate([offload([31n])]).map((e) => Array.from(stored(e.data).blockHashes))).toEqual([[31n]]);
    });

    it("knows a block as long as some tier holds it, and forgets everything on a clear", () => {
      const { t } = translator({ tokenlessStores: true });
      const translate = (events: VllmKvEvent[]) =>
        t.translateBatch({ ...batch(events), unknownEvents: 0, invalidEvents: 0 });
      translate([
        store([11n], null, tokens(4)),
        offload([11n], "CPU"),
        { type: "BlockRemoved", blockHashes: [11n], medium: "GPU" },
      ]);
      expect(translate([offload([11n], "DISK")]).map((e) => e.storageTier)).toEqual(["disk"]); // still held on the CPU
      translate([
        { type: "BlockRemoved", blockHashes: [11n], medium: "CPU" },
        { type: "BlockRemoved", blockHashes: [11n], medium: "DISK" },
      ]);
      expect(t.knownBlocks).toBe(0);
      expect(translate([offload([11n])])).toEqual([]);
      translate([store([12n, 13n], null, tokens(8))]);
      expect(t.knownBlocks).toBe(2);
      translate([{ type: "AllBlocksCleared" }]);
      expect(t.knownBlocks).toBe(0);
      expect(translate([offload([12n])])).toEqual([]);
      expect(t.issues.unknown_tokens).toBe(2);
    });

    it("remembers many blocks and forgets evicted ones (table growth and deletion)", () => {
      const { t } = translator({ tokenlessStores: true });
      const translate = (events: VllmKvEvent[]) =>
        t.translateBatch({ ...batch(events), unknownEvents: 0, invalidEvents: 0 });
      const hashes = Array.from({ length: 5_000 }, (_, i) => (BigInt(i + 1) * 0x9e3779b97f4a7c15n) % (1n << 64n));
      for (let i = 0; i < hashes.length; i++) translate([store([hashes[i]!], null, tokens(4, i))]);
      translate([{ type: "BlockRemoved", blockHashes: hashes.filter((_, i) => i % 2 === 0), medium: "GPU" }]);
      expect(t.knownBlocks).toBe(2_500);
      const out = translate([offload(hashes)]);
      expect(out.map((e) => stored(e.data).blockHashes[0])).toEqual(hashes.filter((_, i) => i % 2 === 1));
      expect(out.map((e) => stored(e.data).tokensHashes[0])).toEqual(
        hashes.map((_, i) => computeBlockHashes(tokens(4, i), BS)[0]).filter((_, i) => i % 2 === 1),
      );
      expect(t.issues.unknown_tokens).toBe(2_500);
    });
  });

  it("emits cleared events with the next id for resets", () => {
    const { t } = translator({ firstEventId: 41n });
    expect(t.cleared()).toMatchObject({ eventId: 41n, workerId: 7n, dpRank: 1, data: { type: "cleared" } });
    expect(t.nextEventId).toBe(42n);
  });
});
