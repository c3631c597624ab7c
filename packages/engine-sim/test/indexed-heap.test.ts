import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { IndexedHeap } from "../src/indexed-heap.js";

describe("IndexedHeap", () => {
  it("always yields the id with the smallest key, through key changes and removals", () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant("set" as const), id: fc.nat(40), key: fc.integer({ min: -5, max: 5 }) }),
      fc.record({ kind: fc.constant("delete" as const), id: fc.nat(40) }),
      fc.record({ kind: fc.constant("pop" as const) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        const heap = new IndexedHeap(2);
        const model = new Map<number, number>();
        for (const o of ops) {
          if (o.kind === "set") {
            heap.set(o.id, o.key);
            model.set(o.id, o.key);
          } else if (o.kind === "delete") {
            heap.delete(o.id);
            model.delete(o.id);
          } else {
            const id = heap.pop();
            if (model.size === 0) {
              expect(id).toBe(-1);
              continue;
            }
            expect(model.get(id)).toBe(Math.min(...model.values()));
            model.delete(id);
          }
          expect(heap.size).toBe(model.size);
          for (const id of model.keys()) expect(heap.has(id)).toBe(true);
        }
      }),
    );
  });
});
