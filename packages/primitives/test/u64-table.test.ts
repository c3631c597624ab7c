import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { U64Table } from "../src/index.js";

describe("U64Table", () => {
  it("stores, overwrites and deletes keys made of three int32 words", () => {
    const table = new U64Table();
    expect(table.set(1, -1, 0x7fffffff, 5)).toBe(-1);
    expect(table.set(1, -1, 0x7fffffff, 6)).toBe(5);
    expect(table.get(1, -1, 0x7fffffff)).toBe(6);
    expect(table.get(2, -1, 0x7fffffff)).toBe(-1);
    expect(table.size).toBe(1);
    expect(table.delete(1, -1, 0x7fffffff)).toBe(6);
    expect(table.delete(1, -1, 0x7fffffff)).toBe(-1);
    expect(table.size).toBe(0);
  });

  it("behaves like a Map under random inserts and deletes (collisions, growth, backward shifts)", () => {
    const key = fc.tuple(
      fc.integer({ min: 0, max: 3 }),
      fc.integer({ min: -4, max: 4 }),
      fc.integer({ min: 0, max: 2 }),
    );
    const op = fc.oneof(
      fc.record({ kind: fc.constant("set" as const), key, value: fc.nat(1000) }),
      fc.record({ kind: fc.constant("delete" as const), key }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const table = new U64Table(1);
        const model = new Map<string, number>();
        for (const o of ops) {
          const name = o.key.join(",");
          if (o.kind === "set") {
            expect(table.set(...o.key, o.value)).toBe(model.get(name) ?? -1);
            model.set(name, o.value);
          } else {
            expect(table.delete(...o.key)).toBe(model.get(name) ?? -1);
            model.delete(name);
          }
        }
        expect(table.size).toBe(model.size);
        for (let t = 0; t <= 3; t++) {
          for (let lo = -4; lo <= 4; lo++) {
            for (let hi = 0; hi <= 2; hi++) expect(table.get(t, lo, hi)).toBe(model.get(`${t},${lo},${hi}`) ?? -1);
          }
        }
        const listed = new Map<string, number>();
        for (let i = 0; i < table.capacity; i++) {
          if (table.valueAt(i) >= 0)
            listed.set(`${table.tagAt(i)},${table.loAt(i)},${table.hiAt(i)}`, table.valueAt(i));
        }
        expect(listed).toEqual(model);
      }),
      { numRuns: 200 },
    );
  });
});
