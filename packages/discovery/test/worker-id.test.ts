import { xxh3 } from "@node-rs/xxhash";
import { describe, expect, it } from "vitest";
import { containerWorkerId, formatWorkerId, parseWorkerId, podWorkerId, workerIdFromName } from "../src/index.js";

describe("worker ids", () => {
  it("are XXH3-64 with seed 0 of the UTF-8 name", () => {
    expect(workerIdFromName("vllm-agg-worker-0")).toBe(xxh3.xxh64(Buffer.from("vllm-agg-worker-0"), 0n));
    // XXH3-64 of the empty input with seed 0 (published test vector).
    expect(workerIdFromName("")).toBe(0x2d06800538d394c2n);
  });

  it("give the main container the pod's id and other containers their own", () => {
    expect(containerWorkerId("pod-a", "main")).toBe(podWorkerId("pod-a"));
    expect(containerWorkerId("pod-a", "engine-1")).toBe(workerIdFromName("pod-a/engine-1"));
    expect(containerWorkerId("pod-a", "engine-1")).not.toBe(containerWorkerId("pod-a", "engine-2"));
  });

  it("print and parse as decimal u64", () => {
    const max = (1n << 64n) - 1n;
    expect(formatWorkerId(max)).toBe("18446744073709551615");
    expect(parseWorkerId(" 18446744073709551615 ")).toBe(max);
    expect(() => parseWorkerId("18446744073709551616")).toThrow(/exceeds/);
    expect(() => parseWorkerId("-1")).toThrow(/decimal u64/);
    expect(() => parseWorkerId("0x10")).toThrow(/decimal u64/);
  });
});
