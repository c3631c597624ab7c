import { encode } from "@msgpack/msgpack";
import { describe, expect, it } from "vitest";
import {
  MAX_EVENTS_PER_BATCH,
  VllmEventIngest,
  decodeVllmEventBatch,
  type VllmEventIngestOptions,
} from "../src/index.js";

const RANK = { workerId: 1n, dpRank: 0 };
const million = () => Array.from({ length: 1_000_000 }, () => 7);

describe("hostile KV-event payloads", () => {
  // Before: each invalid event threw (with a stack trace) and a 1 MB payload of a million of them held
  // the event loop for about 15 s. After: the batch's declared size is read from its headers and the
  // payload is refused before it is decoded.
  it.each([
    ["array", () => encode([0, million(), 0])],
    ["map", () => encode({ ts: 0, events: million(), data_parallel_rank: 0 })],
  ])("refuses a 1 MB %s-form payload of a million invalid events within 50 ms", (_form, make) => {
    const payload = make();
    expect(payload.byteLength).toBeGreaterThan(1_000_000);
    const lines: string[] = [];
    const options: VllmEventIngestOptions = { blockSize: 16, log: (l) => lines.push(l) };
    const ingest = new VllmEventIngest(options, () => expect.unreachable("no event may come out"));
    ingest.onBatch(RANK, payload); // warm-up: the first call also compiles the code paths
    const started = performance.now();
    ingest.onBatch(RANK, payload);
    expect(performance.now() - started).toBeLessThan(50);
    expect(ingest.translator(RANK).issues.malformed_payload).toBe(2);
    expect(lines.join("\n")).toMatch(/batch of 1000000 events: at most 4096 are accepted/);
  });

  it("drops events past the cap of a batch whose size only shows once decoded, without exceptions for non-events", () => {
    const batch = decodeVllmEventBatch(
      encode({
        ts: "not a number",
        events: [...Array.from({ length: MAX_EVENTS_PER_BATCH }, () => 7), ["BlockRemoved", [1]]],
      }),
    );
    expect(batch.events).toEqual([]);
    expect(batch.invalidEvents).toBe(MAX_EVENTS_PER_BATCH + 1);
    expect(batch.firstInvalidReason).toMatch(/the 1 beyond 4096 are dropped/);
  });
});
