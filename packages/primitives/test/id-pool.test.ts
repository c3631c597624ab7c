import { describe, expect, it } from "vitest";
import { IdPool, resized } from "../src/index.js";

describe("IdPool", () => {
  it("hands out dense ids, reuses released ones, and grows the owner's columns first", () => {
    const grown: number[] = [];
    const pool = new IdPool((capacity) => grown.push(capacity), 2);
    expect([pool.allocate(), pool.allocate()]).toEqual([0, 1]);
    expect(grown).toEqual([]);
    expect(pool.allocate()).toBe(2);
    expect(grown).toEqual([4]);
    pool.release(1);
    pool.release(0);
    expect([pool.allocate(), pool.allocate(), pool.allocate()]).toEqual([0, 1, 3]);
    expect(pool.highWater).toBe(4);
    pool.reset();
    expect(pool.allocate()).toBe(0);
  });

  it("resizes typed arrays, keeping values and zero-filling the rest", () => {
    expect([...resized(Int32Array.of(1, 2), 4)]).toEqual([1, 2, 0, 0]);
    expect([...resized(Float64Array.of(1.5, 2.5, 3.5), 2)]).toEqual([1.5, 2.5]);
  });
});
