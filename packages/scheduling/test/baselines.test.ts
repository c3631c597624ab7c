import { seededRng } from "@dynamo/primitives";
import { computeSequenceHashes, workerRankKey } from "@dynamo/kv-indexer";
import { describe, expect, it } from "vitest";
import {
  ApproxPrefixIndex,
  ApproxPrefixProducer,
  DynamoClassicPicker,
  MaxScorePicker,
  WorkerPool,
  approxPrefixHashes,
  createPicker,
  gaieDefaultPicker,
  kvUtilizationScore,
  llmdPrecisePicker,
  loadAwareScore,
  precisePrefixScore,
  prefixMatchScore,
  queueScores,
  registerBaselinePickers,
  type EndpointMetrics,
  type EndpointSignals,
  type PoolRequest,
} from "../src/index.js";

const enc = (s: string) => new TextEncoder().encode(s);
const key = (w: number) => workerRankKey(BigInt(w), 0);
const signalsOf = (m: Record<string, EndpointMetrics>): EndpointSignals => ({ metrics: (k) => m[k] });

describe("baseline scores", () => {
  it("queue-scorer is min-max over the candidates, 1.0 when all are equal", () => {
    expect([...queueScores([0, 5, 10])]).toEqual([1, 0.5, 0]);
    expect([...queueScores([3, 3])]).toEqual([1, 1]);
  });

  it("kv-cache-utilization-scorer is 1 − usage, clamped", () => {
    expect(kvUtilizationScore(0.25)).toBe(0.75);
    expect(kvUtilizationScore(1.2)).toBe(0);
  });

  it("prefix-cache-scorer is matched / total, 0 without blocks", () => {
    expect(prefixMatchScore(3, 4)).toBe(0.75);
    expect(prefixMatchScore(0, 0)).toBe(0);
  });

  it("load-aware-scorer: 0.5 idle, 0.5·(1 − q/threshold), 0 at the threshold", () => {
    expect(loadAwareScore(0)).toBe(0.5);
    expect(loadAwareScore(64)).toBe(0.25);
    expect(loadAwareScore(128)).toBe(0);
    expect(loadAwareScore(500)).toBe(0);
    expect(loadAwareScore(5, 10)).toBe(0.25);
  });

  it("precise-prefix-cache-scorer: gpu 1.0 and cpu 0.8 per consecutive hit over the request's blocks, capped", () => {
    expect(precisePrefixScore(5, 10)).toBe(0.5);
    expect(precisePrefixScore(5, 10, 5)).toBeCloseTo(0.9, 12);
    expect(precisePrefixScore(12, 10)).toBe(1);
    expect(precisePrefixScore(0, 0)).toBe(0);
  });
});

describe("GAIE approximate prefix producer", () => {
  it("hashes character blocks chained from the model name (xxHash64 reference vector, partial tail hashed)", () => {
    const input = enc("a".repeat(64) + "b".repeat(64) + "c".repeat(10));
    expect(approxPrefixHashes(input, "Qwen/Qwen3-32B", 64)).toEqual([
      8994041689694869163n,
      1842150791676381019n,
      15085322326520674157n,
    ]);
    expect(approxPrefixHashes(enc("a".repeat(63)), "Qwen/Qwen3-32B", 64)).toEqual([]);
    expect(approxPrefixHashes(input, "Qwen/Qwen3-32B", 64, 2)).toHaveLength(2);
  });

  it("matches hashes in order until none is held, every holder earning one per hash", () => {
    const index = new ApproxPrefixIndex({ blockSizeTokens: 16 });
    const a = index.hashes(enc("x".repeat(64 * 3)), "m");
    const b = index.hashes(enc("x".repeat(64 * 2) + "y".repeat(64)), "m");
    index.learn("w1", a);
    index.learn("w2", a.slice(0, 1));
    expect(index.match(b)).toEqual({
      matched: new Map([
        ["w1", 2],
        ["w2", 1],
      ]),
      total: 3,
    });
    expect(index.match(index.hashes(enc("z".repeat(128)), "m")).matched.size).toBe(0);
  });

  it("evicts the least recently used hash past each endpoint's capacity", () => {
    const index = new ApproxPrefixIndex({ blockSizeTokens: 1, lruCapacityPerServer: 2 });
    const h = index.hashes(enc("abcd"), "m"); // one block of 4 characters
    expect(h).toHaveLength(1);
    index.learn("w", [1n, 2n]);
    index.learn("w", [1n]); // 1 is now the most recent
    index.learn("w", [3n]); // evicts 2
    expect(index.match([1n]).matched.get("w")).toBe(1);
    expect(index.match([2n]).matched.size).toBe(0);
    expect(index.size("w")).toBe(2);
    index.removeServer("w");
    expect(index.match([1n]).matched.size).toBe(0);
  });
});

const BS = 16;
function poolRequest(blocks: number, overlaps?: Map<string, number>): PoolRequest {
  return {
    isl: blocks * BS,
    sequenceHashes: computeSequenceHashes(BigUint64Array.from({ length: blocks }, (_, i) => BigInt(i + 1))),
    overlaps: overlaps ? { device: overlaps } : undefined,
  };
}
function chosenWorker(pool: WorkerPool, req: PoolRequest): bigint {
  const e = pool.evaluate(req);
  if (e.kind !== "chosen") throw new Error(e.reason);
  return e.chosen.rank.workerId;
}

describe("scored baselines in a pool", () => {
  it("gaie-default weighs queue 2, KV utilisation 2 and prefix 3, and learns the chosen endpoint", () => {
    const metrics = { [key(1)]: { waiting: 0, kvUsage: 0.1 }, [key(2)]: { waiting: 4, kvUsage: 0.5 } };
    const producer = new ApproxPrefixProducer(new ApproxPrefixIndex({ blockSizeTokens: BS }));
    const pool = new WorkerPool({
      blockSize: BS,
      picker: gaieDefaultPicker(signalsOf(metrics), producer),
      rng: seededRng(1),
    });
    pool.addWorker({ workerId: 1n });
    pool.addWorker({ workerId: 2n });
    const prompt = enc("p".repeat(BS * 4 * 4));
    // Cold: worker 1 scores 2·1 + 2·0.9 = 3.8 against 2·0 + 2·0.5 = 1.
    producer.prepare(prompt, "m");
    expect(chosenWorker(pool, poolRequest(4))).toBe(1n);
    expect(producer.index.size(key(1))).toBe(4);
    // Worker 2 alone holds the whole prompt: 2·0 + 2·0.5 + 3·1 = 4 beats worker 1's 3.8.
    producer.index.removeServer(key(1));
    producer.index.learn(key(2), producer.index.hashes(prompt, "m"));
    producer.prepare(prompt, "m");
    expect(chosenWorker(pool, poolRequest(4))).toBe(2n);
  });

  function gaiePicker(): MaxScorePicker {
    return gaieDefaultPicker(signalsOf({}), new ApproxPrefixProducer(new ApproxPrefixIndex())) as MaxScorePicker;
  }

  it("max-score picker breaks ties uniformly at random", () => {
    const pool = new WorkerPool({ blockSize: BS, picker: gaiePicker(), rng: seededRng(7) });
    for (let w = 1; w <= 4; w++) pool.addWorker({ workerId: BigInt(w) });
    const seen = new Set<bigint>();
    for (let i = 0; i < 64; i++) seen.add(chosenWorker(pool, poolRequest(2)));
    expect(seen.size).toBe(4);
  });

  it("llm-d-precise: precise prefix 2 + load-aware 1 (a long queue loses to half the prefix)", () => {
    const metrics = { [key(1)]: { waiting: 0, kvUsage: 0 }, [key(2)]: { waiting: 128, kvUsage: 0 } };
    const pool = new WorkerPool({ blockSize: BS, picker: llmdPrecisePicker(signalsOf(metrics), BS) });
    pool.addWorker({ workerId: 1n });
    pool.addWorker({ workerId: 2n });
    // Worker 2 holds 8 of 8 blocks (2·1 + 0 = 2), worker 1 holds 6 (2·0.75 + 0.5 = 2.0): tie → either.
    // With 7 of 8 on worker 2 instead: 1.75 + 0 < 2.0 → worker 1.
    expect(
      chosenWorker(
        pool,
        poolRequest(
          8,
          new Map([
            [key(1), 6],
            [key(2), 7],
          ]),
        ),
      ),
    ).toBe(1n);
    // Worker 2 holds everything, worker 1 only 4 blocks: 2 > 1.5.
    expect(
      chosenWorker(
        pool,
        poolRequest(
          8,
          new Map([
            [key(1), 4],
            [key(2), 8],
          ]),
        ),
      ),
    ).toBe(2n);
  });

  it("dynamo-classic: lowest 2025 cost, ties to registration order", () => {
    const pool = new WorkerPool({ blockSize: BS, picker: new DynamoClassicPicker(BS) });
    for (let w = 1; w <= 3; w++) pool.addWorker({ workerId: BigInt(w) });
    expect(chosenWorker(pool, poolRequest(4))).toBe(1n);
    expect(chosenWorker(pool, poolRequest(4, new Map([[key(3), 2]])))).toBe(3n);
  });

  it("registers the baselines by name", () => {
    registerBaselinePickers({
      signals: signalsOf({}),
      producer: new ApproxPrefixProducer(new ApproxPrefixIndex()),
      blockSize: BS,
    });
    expect(createPicker("gaie-default").name).toBe("gaie-default");
    expect(createPicker("llm-d-precise").name).toBe("llm-d-precise");
    expect(createPicker("dynamo-classic").name).toBe("dynamo-classic");
  });
});
