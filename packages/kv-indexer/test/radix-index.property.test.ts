import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RadixIndex, workerRankKey, type RouterEvent, type WorkerRank } from "../src/index.js";
import { ReferenceModel } from "./reference-model.js";

// Small alphabets so that prefixes are shared, hashes repeat and every rule gets exercised; some values
// above 2^63 so that both 32-bit halves matter.
const HIGH = 1n << 63n;
const localHash = fc.constantFrom(1n, 2n, 3n, HIGH + 1n, HIGH + 2n);
const engineHash = fc.constantFrom(
  ...Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? BigInt(i + 1) : HIGH + BigInt(i) * 0x1_0000_0001n)),
);
const worker = fc.record({ workerId: fc.constantFrom(1n, 2n, 2n ** 64n - 1n), dpRank: fc.constantFrom(0, 1) });

type Op =
  | {
      kind: "stored";
      worker: WorkerRank;
      parent: bigint | null;
      blocks: Array<{ blockHash: bigint; tokensHash: bigint }>;
    }
  | { kind: "removed"; worker: WorkerRank; hashes: bigint[] }
  | { kind: "cleared"; worker: WorkerRank }
  | { kind: "removeWorker"; workerId: bigint };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("stored" as const),
      worker,
      parent: fc.option(engineHash, { freq: 2 }),
      blocks: fc.array(fc.record({ blockHash: engineHash, tokensHash: localHash }), { minLength: 1, maxLength: 4 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("removed" as const),
      worker,
      hashes: fc.array(engineHash, { minLength: 1, maxLength: 3 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("cleared" as const), worker }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("removeWorker" as const), workerId: fc.constantFrom(1n, 2n) }),
  },
);

const randomQuery = fc.array(localHash, { minLength: 1, maxLength: 6 }).map((hashes) => BigUint64Array.from(hashes));

function toEvent(o: Exclude<Op, { kind: "removeWorker" }>, eventId: bigint): RouterEvent {
  const base = { workerId: o.worker.workerId, dpRank: o.worker.dpRank, eventId, storageTier: "device" as const };
  if (o.kind === "cleared") return { ...base, data: { type: "cleared" } };
  if (o.kind === "removed") return { ...base, data: { type: "removed", blockHashes: BigUint64Array.from(o.hashes) } };
  return {
    ...base,
    data: {
      type: "stored",
      parentHash: o.parent,
      blockHashes: BigUint64Array.from(o.blocks, (b) => b.blockHash),
      tokensHashes: BigUint64Array.from(o.blocks, (b) => b.tokensHash),
    },
  };
}

/** Runs the ops on a fresh index and model (event ids are ignored: this is about the tree). */
function build(ops: Op[]): { index: RadixIndex; model: ReferenceModel } {
  const index = new RadixIndex({ trackEventIds: false });
  const model = new ReferenceModel();
  ops.forEach((o, i) => {
    if (o.kind === "removeWorker") {
      index.removeWorker(o.workerId);
      model.removeWorker(o.workerId);
    } else {
      const event = toEvent(o, BigInt(i));
      index.apply(event);
      model.apply(event);
    }
  });
  return { index, model };
}

function sortedKeys(workers: WorkerRank[]): string[] {
  return workers.map((w) => workerRankKey(w.workerId, w.dpRank)).sort();
}

describe("RadixIndex against a reference model", () => {
  it("random interleavings of store/remove/clear/removeWorker agree with the model", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), fc.array(randomQuery, { maxLength: 5 }), (ops, queries) => {
        const { index, model } = build(ops);
        expect(index.size).toBe(model.size);
        expect(sortedKeys(index.workers())).toEqual(sortedKeys(model.workers()));
        for (const query of [...model.paths(), ...queries]) {
          const { scores, treeSizes } = index.findMatches(query);
          expect(Object.fromEntries(scores)).toEqual(Object.fromEntries(model.findMatches(query)));
          for (const key of scores.keys()) expect(treeSizes.get(key)).toBe(model.treeSize(key));
        }
      }),
      { numRuns: 300 },
    );
  });

  it("replaying dump() into an empty index gives the same findMatches answers", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), fc.array(randomQuery, { maxLength: 5 }), (ops, queries) => {
        const { index, model } = build(ops);
        const replayed = new RadixIndex();
        const outcomes = index.dump().map((event) => replayed.apply(event));
        expect(outcomes.every((o) => o === "applied")).toBe(true);
        for (const query of [...model.paths(), ...queries]) {
          const original = index.findMatches(query);
          const copy = replayed.findMatches(query);
          expect(Object.fromEntries(copy.scores)).toEqual(Object.fromEntries(original.scores));
          // Blocks a rank holds below a prefix it lost can never match and are not dumped.
          for (const key of copy.scores.keys()) expect(copy.treeSizes.get(key)).toBe(model.reachableEntries(key));
        }
        const reachable = model
          .workers()
          .reduce((sum, w) => sum + model.reachableEntries(workerRankKey(w.workerId, w.dpRank)), 0);
        expect(replayed.size).toBe(reachable);
        expect(replayed.dump()).toHaveLength(reachable);
      }),
      { numRuns: 300 },
    );
  });
});
