import { describe, expect, it } from "vitest";
import {
  chainHash,
  computeBlockHashes,
  computeLocalHash,
  computeSequenceHashes,
  requiredBlocks,
  saltedSeed,
  xxh3Hash,
} from "../src/index.js";

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

// Dynamo's router hashing test vectors (XXH3-64, seed 1337, LE u32 tokens; LoRA and namespace salts).
describe("block hashing test vectors", () => {
  it("XXH3-64 of ASCII 'test data' with seed 1337", () => {
    expect(xxh3Hash(Buffer.from("test data"))).toBe(13226331709069118873n);
  });

  it("local hashes of tokens 0..11 at block size 4", () => {
    expect([...computeBlockHashes(range(0, 12), 4)]).toEqual([
      9143094415614847814n,
      12124091508212882195n,
      1088361764653601668n,
    ]);
  });

  it("sequence hashes chain parent first", () => {
    const local = computeBlockHashes(range(0, 12), 4);
    expect([...computeSequenceHashes(local)]).toEqual([
      9143094415614847814n,
      9510318385840434533n,
      16998148715716822651n,
    ]);
    expect(chainHash(9143094415614847814n, 12124091508212882195n)).toBe(9510318385840434533n);
  });

  it("LoRA, namespace and combined seeds", () => {
    expect(saltedSeed({ loraName: "adapter-a" })).toBe(8842669519798868182n);
    expect(saltedSeed({ cacheSalt: "tenant-a" })).toBe(1948188790972764086n);
    expect(saltedSeed({ loraName: "adapter-a", cacheSalt: "tenant-a" })).toBe(10790858310771630931n);
    expect(saltedSeed({ loraName: "", cacheSalt: "" })).toBe(1337n);
  });

  it("salted local hashes", () => {
    expect(computeBlockHashes(range(0, 4), 4, { loraName: "adapter-a" })[0]).toBe(6665157333201000639n);
    expect(computeBlockHashes(range(0, 4), 4, { cacheSalt: "tenant-a" })[0]).toBe(17009624042690211646n);
    expect(computeBlockHashes(range(0, 4), 4, { loraName: "adapter-a", cacheSalt: "tenant-a" })[0]).toBe(
      8269515957840517240n,
    );
  });

  it("multimodal hashes are appended to the block bytes", () => {
    expect(computeLocalHash(range(0, 4), 1337n, [42n])).toBe(18280081842874931122n);
    expect(computeBlockHashes(range(0, 4), 4, { blockMmHashes: [[42n]] })[0]).toBe(18280081842874931122n);
  });

  it("block size 16 vectors", () => {
    const local = computeBlockHashes(range(0, 32), 16);
    expect([...local]).toEqual([15310707395893867146n, 15292316782987903195n]);
    expect(computeSequenceHashes(local)[1]).toBe(13769157705258532664n);
  });
});

describe("block boundaries", () => {
  it("hashes only complete blocks", () => {
    expect(computeBlockHashes(range(0, 4), 4)).toHaveLength(1);
    expect(computeBlockHashes(range(0, 5), 4)).toHaveLength(1);
    expect(computeBlockHashes(range(0, 9), 4)).toHaveLength(2);
    expect(computeBlockHashes(range(0, 3), 4)).toHaveLength(0);
    expect(computeBlockHashes(range(0, 8), 0)).toHaveLength(0);
  });

  it("gives the same hashes for number arrays and Uint32Array (including subarray views)", () => {
    const tokens = range(0, 40).map((t) => t * 7919);
    const typed = Uint32Array.from([999, ...tokens]).subarray(1);
    expect([...computeBlockHashes(typed, 8)]).toEqual([...computeBlockHashes(tokens, 8)]);
  });

  it("continues a chain from a parent sequence hash", () => {
    const local = computeBlockHashes(range(0, 12), 4);
    const tail = computeSequenceHashes(local.subarray(1), 9143094415614847814n);
    expect([...tail]).toEqual([9510318385840434533n, 16998148715716822651n]);
  });

  it("counts required blocks with the partial tail", () => {
    expect(requiredBlocks(1800, 64)).toBe(29);
    expect(Math.floor(1800 / 64)).toBe(28);
    expect(requiredBlocks(0, 64)).toBe(0);
  });
});
