import { monitorEventLoopDelay } from "node:perf_hooks";
import { encode } from "@msgpack/msgpack";
import { RadixIndex, computeBlockHashes, type RouterEvent } from "@dynamo/kv-indexer";
import { describe, expect, it } from "vitest";
import {
  MAX_EVENTS_PER_BATCH,
  VllmEventIngest,
  VllmEventTranslator,
  encodeVllmEventBatch,
  type VllmBlockStored,
} from "../src/index.js";

const BS = 16;
const RANK = { workerId: 7n, dpRank: 0 };
const quiet = (): void => undefined;

/** 4096 events that look like stores and fail deep inside: the last of 128 token ids is not a u32, or nesting. */
function hostilePayload(): Uint8Array {
  const tokens = [...Array.from({ length: 127 }, (_, i) => i), 2n ** 40n];
  let nested: unknown = ["BlockStored"];
  for (let d = 0; d < 64; d++) nested = [nested];
  const events = Array.from({ length: MAX_EVENTS_PER_BATCH }, (_, i) =>
    i % 2 === 0
      ? ["BlockStored", Array.from({ length: 16 }, (_, j) => BigInt(i * 16 + j + 1)), null, tokens, BS, null, "GPU"]
      : nested,
  );
  return encode([0, events, 0], { useBigInt64: true });
}

/** 4096 valid stores of 2 blocks each, chained into one sequence of 8,192 blocks, starting at engine hash `base`. */
function validPayload(base: number): Uint8Array {
  const events: VllmBlockStored[] = [];
  for (let i = 0; i < MAX_EVENTS_PER_BATCH; i++) {
    const first = base + i * 2 + 1;
    events.push({
      type: "BlockStored",
      blockHashes: [0, 1].map((j) => BigInt(first + j)),
      parentBlockHash: i === 0 ? null : BigInt(first - 1),
      tokenIds: Array.from({ length: 2 * BS }, (_, t) => ((first + Math.floor(t / BS)) * BS + (t % BS)) % 150_000),
      blockSize: BS,
      medium: "GPU",
    });
  }
  return encodeVllmEventBatch({ ts: 0, events, dataParallelRank: 0 });
}

/** A router event without its payload arrays, for comparing sequences. */
function summary(e: RouterEvent): string {
  const d = e.data;
  const detail =
    d.type === "stored" ? `${d.parentHash}:${d.blockHashes.length}` : d.type === "removed" ? d.blockHashes.length : "";
  return `${e.eventId} ${e.storageTier} ${d.type} ${detail}`;
}

describe("ingest work is sliced", () => {
  // Before: `onBatch` decoded, translated and applied a whole batch before returning, so a burst of
  // large batches held the event loop for their total time (hundreds of ms here). After: the work runs in
  // slices of a few ms with the event loop served in between, and the events come out in the same order.
  it("keeps the event-loop delay under 50 ms through hostile and large valid batches, in order", async () => {
    const payloads = [hostilePayload(), validPayload(0), hostilePayload(), validPayload(1_000_000), hostilePayload()];
    const reference = new VllmEventTranslator({ ...RANK, blockSize: BS, log: quiet });
    const expected = payloads.flatMap((p) => reference.translatePayload(p)).map(summary);
    expect(expected.length).toBe(2 * MAX_EVENTS_PER_BATCH);

    // Warm-up on a throwaway ingest so that compilation does not count as delay.
    const warm = new VllmEventIngest({ blockSize: BS, log: quiet }, () => undefined);
    for (const p of payloads) warm.onBatch(RANK, p);
    await warm.idle();

    /** One pass: the payloads through a fresh ingest, the event-loop delay measured meanwhile. */
    const pass = async () => {
      const index = new RadixIndex();
      // Compared as they come (keeping nothing young alive that the garbage collector would have to copy).
      let seen = 0;
      let outOfOrder = 0;
      const ingest = new VllmEventIngest({ blockSize: BS, log: quiet }, (event) => {
        if (summary(event) !== expected[seen++]) outOfOrder++;
        index.apply(event);
      });
      const histogram = monitorEventLoopDelay({ resolution: 1 });
      histogram.enable();
      await new Promise((resolve) => setTimeout(resolve, 20));
      for (const p of payloads) ingest.onBatch(RANK, p);
      const queued = ingest.queued;
      await ingest.idle();
      await new Promise((resolve) => setTimeout(resolve, 20));
      histogram.disable();
      return { maxDelayMs: histogram.max / 1e6, queued, seen, outOfOrder, ingest, index };
    };
    // The machine is shared: a pass during which another process held the CPU (or a full garbage collection
    // ran) is measured again; one of three must stay under the bound. Unsliced work misses it in every pass.
    const passes = [await pass()];
    while (passes.length < 3 && passes.at(-1)!.maxDelayMs >= 50) passes.push(await pass());
    const { queued, seen, outOfOrder, ingest, index } = passes.at(-1)!;
    expect(queued).toBeGreaterThan(0);
    expect(Math.min(...passes.map((p) => p.maxDelayMs))).toBeLessThan(50);
    expect(seen).toBe(expected.length);
    expect(outOfOrder).toBe(0);
    expect(ingest.translator(RANK).issues.invalid_event).toBe(3 * MAX_EVENTS_PER_BATCH);
    // Both chains are indexed whole: 2 × 8,192 blocks.
    const firstChain = Array.from({ length: 8 }, (_, b) => b + 1).flatMap((h) =>
      Array.from({ length: BS }, (_, t) => (h * BS + t) % 150_000),
    );
    // Block h of chain 0 holds tokens h·BS … h·BS + 15.
    expect(index.findMatches(computeBlockHashes(firstChain, BS)).scores.get("7/0")).toBe(8);
    expect(index.size).toBe(2 * 2 * MAX_EVENTS_PER_BATCH);
  });

  it("applies a small batch before onBatch returns while nothing is queued, and a reset in order", async () => {
    const seen: string[] = [];
    const ingest = new VllmEventIngest({ blockSize: BS, log: quiet }, (e) => seen.push(summary(e)));
    const small = encodeVllmEventBatch({
      ts: 0,
      events: [
        { type: "BlockStored", blockHashes: [1n], parentBlockHash: null, tokenIds: Array(BS).fill(3), blockSize: BS },
      ],
      dataParallelRank: 0,
    });
    ingest.onBatch(RANK, small);
    expect(seen).toEqual(["0 device stored null:1"]);
    ingest.onBatch(RANK, validPayload(10));
    ingest.onReset(RANK);
    await ingest.idle();
    expect(seen.length).toBe(2 + MAX_EVENTS_PER_BATCH);
    expect(seen.at(-1)).toBe(`${1 + MAX_EVENTS_PER_BATCH} device cleared `);
  });
});
