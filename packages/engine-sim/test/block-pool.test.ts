import { describe, expect, it } from "vitest";
import { BlockPool, NO_BLOCK } from "../src/block-pool.js";

function pool(capacity: number, policy: "lineage" | "lru") {
  const evicted: bigint[] = [];
  const p = new BlockPool(capacity, policy, (slot) => evicted.push(p.hashAt(slot)));
  return { p, evicted };
}

describe("BlockPool", () => {
  it("keeps released full blocks cached, frees partial ones, and reuses cached blocks by hash", () => {
    const { p } = pool(4, "lineage");
    const full = p.allocate();
    const partial = p.allocate();
    p.commit(full, 11n, NO_BLOCK);
    expect(p.active).toBe(2);
    p.release(partial);
    p.release(full);
    expect(p.active).toBe(0);
    expect(p.cachedInactive).toBe(1);
    const hit = p.lookup(11n);
    expect(hit).toBe(full);
    p.acquire(hit);
    p.acquire(hit);
    expect(p.refCountOf(hit)).toBe(2);
    expect(p.active).toBe(1);
    expect(p.cachedInactive).toBe(0);
    expect(p.lookup(12n)).toBe(NO_BLOCK);
  });

  it("evicts only when no slot is free, and never an active block", () => {
    const { p, evicted } = pool(2, "lru");
    const a = p.allocate();
    const b = p.allocate();
    p.commit(a, 1n, NO_BLOCK);
    p.commit(b, 2n, a);
    expect(p.allocate()).toBe(NO_BLOCK);
    p.release(b);
    const c = p.allocate();
    expect(c).toBe(b);
    expect(evicted).toEqual([2n]);
    expect(p.lookup(2n)).toBe(NO_BLOCK);
    expect(p.lookup(1n)).toBe(a);
  });

  it("lru evicts the block released longest ago, lineage the oldest leaf", () => {
    for (const policy of ["lru", "lineage"] as const) {
      const { p, evicted } = pool(3, policy);
      const parent = p.allocate();
      const child = p.allocate();
      const other = p.allocate();
      p.commit(parent, 1n, NO_BLOCK);
      p.commit(child, 2n, parent);
      p.commit(other, 3n, NO_BLOCK);
      p.release(parent); // released first, but the child still continues it
      p.release(other);
      p.release(child);
      for (let i = 0; i < 3; i++) p.allocate();
      expect(evicted).toEqual(policy === "lru" ? [1n, 3n, 2n] : [3n, 2n, 1n]);
    }
  });

  it("lists cached blocks with their parents, and resets only when nothing is in use", () => {
    const { p } = pool(4, "lineage");
    const a = p.allocate();
    const b = p.allocate();
    p.commit(a, 1n, NO_BLOCK);
    p.commit(b, 2n, a);
    expect([...p.cachedBlocks()].map((x) => [x.hash, x.parentHash, x.refCount])).toEqual([
      [1n, null, 1],
      [2n, 1n, 1],
    ]);
    expect(p.reset()).toBe(false);
    p.release(b);
    p.release(a);
    expect(p.reset()).toBe(true);
    expect([...p.cachedBlocks()]).toEqual([]);
    expect(p.lookup(1n)).toBe(NO_BLOCK);
    for (let i = 0; i < 4; i++) expect(p.allocate()).not.toBe(NO_BLOCK);
  });

  it("finds every hash of a half-full index after removals in the middle of probe runs", () => {
    const { p } = pool(64, "lru");
    const slots: number[] = [];
    // 64 hashes in a 128-bucket table: probe runs are common; every third one is then removed.
    for (let i = 0; i < 64; i++) {
      const s = p.allocate();
      p.commit(s, (BigInt(i) << 48n) | 7n, NO_BLOCK);
      slots.push(s);
    }
    for (let i = 0; i < 64; i += 3) p.release(slots[i]!);
    for (let i = 0; i < 64; i += 3) p.allocate(); // evicts the released ones
    for (let i = 0; i < 64; i++) {
      const found = p.lookup((BigInt(i) << 48n) | 7n);
      if (i % 3 === 0) expect(found).toBe(NO_BLOCK);
      else expect(found).toBe(slots[i]);
    }
  });
});
