import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EngineWorker, VirtualLoop, type KvEventBatch, type RequestResult, type TokenOutput } from "../src/index.js";
import { playWorkload, type WorkloadOp } from "./support.js";

const config = fc.record({
  blockSize: fc.constantFrom(2, 4, 16),
  numGpuBlocks: fc.integer({ min: 16, max: 200 }),
  eviction: fc.constantFrom("lineage" as const, "lru" as const),
  preemptionMode: fc.constantFrom("lifo" as const, "fifo" as const),
  maxNumBatchedTokens: fc.constantFrom(8, 64, 8192),
  maxNumSeqs: fc.constantFrom(1, 3, 256),
  maxLoras: fc.constantFrom(1, 2),
  enablePrefixCaching: fc.boolean(),
  speedupRatio: fc.constantFrom(0, 1, 7),
  disaggregationMode: fc.constantFrom("agg" as const, "agg" as const, "decode" as const, "prefill" as const),
  dataParallelSize: fc.constantFrom(1, 2),
});

const op: fc.Arbitrary<WorkloadOp> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .record({
        dt: fc.double({ min: 0, max: 400, noNaN: true }),
        len: fc.integer({ min: 1, max: 120 }),
        from: fc.constantFrom(0, 0, 1000, 2000),
        maxTokens: fc.integer({ min: 1, max: 200 }),
        lora: fc.constantFrom(null, null, "a", "b"),
        stream: fc.boolean(),
      })
      .map(({ len, from, ...o }) => ({
        kind: "arrive" as const,
        tokens: Array.from({ length: len }, (_, k) => from + k),
        ...o,
      })),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("cancel" as const),
      dt: fc.double({ min: 0, max: 400, noNaN: true }),
      pick: fc.nat(),
    }),
  },
);

const BASE = {
  numGpuBlocks: 1000,
  eviction: "lineage",
  preemptionMode: "lifo",
  maxNumBatchedTokens: 8192,
  maxNumSeqs: 256,
  maxLoras: 1,
  enablePrefixCaching: true,
  speedupRatio: 1,
  disaggregationMode: "agg",
  dataParallelSize: 1,
};

type Config = typeof config extends fc.Arbitrary<infer T> ? T : never;

function run(c: Config, ops: WorkloadOp[], fastForward: boolean) {
  const loop = new VirtualLoop();
  let events = 0;
  const step = loop.step.bind(loop);
  loop.step = () => {
    if (++events > 1_000_000) throw new Error("the workload does not drain");
    return step();
  };
  const batches: KvEventBatch[] = [];
  const results: RequestResult[] = [];
  const tokens: TokenOutput[] = [];
  const worker = new EngineWorker({ ...c, fastForward, onKvEvents: (b) => batches.push(b) }, loop.clock);
  loop.add(...worker.ranks);
  const mid: unknown[] = [];
  const ids = playWorkload(loop, worker, ops, {
    onFinish: (r) => results.push(r),
    onToken: (tok) => tokens.push(tok),
    // Reading the state mid-run must not change what happens.
    afterArrival: (id) => mid.push(worker.ranks.map((e) => [e.requestState(id), e.load()])),
  });
  loop.runUntilIdle();
  // Every request ended and gave its blocks back: nothing stalls or livelocks.
  expect(results).toHaveLength(ids.length);
  for (const engine of worker.ranks) expect(engine.load()).toMatchObject({ waiting: 0, running: 0, activeBlocks: 0 });
  const outcome = { results, batches, tokens, mid, stats: worker.ranks.map((e) => e.stats()), end: loop.now() };
  return { outcome, events };
}

describe("fast-forwarding identical decode steps", () => {
  it("changes nothing: results, events, streamed tokens and counters equal those of stepping one by one (and every workload drains)", () => {
    const loopEvents = { slow: 0, fast: 0 };
    fc.assert(
      fc.property(config, fc.array(op, { minLength: 1, maxLength: 25 }), (c, ops) => {
        const slow = run(c, ops, false);
        const fast = run(c, ops, true);
        expect(fast.outcome).toEqual(slow.outcome);
        loopEvents.slow += slow.events;
        loopEvents.fast += fast.events;
      }),
      { numRuns: 200 },
    );
    // Fast-forwarding did happen: fewer events went through the loop.
    expect(loopEvents.fast).toBeLessThan(loopEvents.slow);
  });

  it("runs a request's decode steps within one block as one event", () => {
    const count = (fastForward: boolean) => {
      const { events, outcome } = run(
        { ...BASE, blockSize: 64, fastForward } as unknown as Config,
        [{ kind: "arrive", dt: 0, tokens: Array.from({ length: 10 }, (_, k) => k), maxTokens: 50, lora: null }],
        fastForward,
      );
      expect(outcome.results[0]!.outputTokens).toBe(50);
      return events;
    };
    expect(count(false)).toBe(51); // one event to begin, then one per step
    expect(count(true)).toBe(3); // begin, the prefill step, the 49 decode steps
  });
});
