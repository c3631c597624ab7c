import { computeBlockHashes, computeSequenceHashes } from "@dynamo/kv-indexer";
import { describe, expect, it } from "vitest";
import { createBlockHasher, sha256CborNoneHash, type ChainValue } from "../src/index.js";

// vLLM sha256_cbor vectors (seed "42", block size 16), from the reference.
const BLOCKS = [
  [2082, 1113, 2142, 374, 264, 4948, 19128, 323, 7203, 429, 374, 66351, 938, 315, 11198, 323],
  [59415, 678, 90505, 11, 54263, 533, 7586, 315, 28922, 13, 1527, 1113, 2142, 6738, 369, 279],
  [75345, 315, 279, 1584, 11, 892, 432, 9982, 311, 387, 25165, 11, 76244, 11, 323, 27756],
];

function chainHashes(algorithm: "sha256_cbor" | "xxh3", tokens: number[], lora: string | null, seed = "42"): bigint[] {
  const hasher = createBlockHasher(algorithm, 16, seed);
  const out: bigint[] = [];
  let parent: ChainValue | null = null;
  for (let start = 0; start + 16 <= tokens.length; start += 16) {
    parent = hasher.chain(parent, tokens, start, lora);
    out.push(hasher.blockHash(parent));
  }
  return out;
}

describe("engine block hashes", () => {
  it("sha256_cbor reproduces vLLM's NONE_HASH and block hashes", () => {
    expect(Buffer.from(sha256CborNoneHash("42")).toString("hex")).toBe(
      "9fa6eb003f14425eb9c8e6baacfbcaab26257357b829c7bfa74ffcc4f31c1780",
    );
    expect(chainHashes("sha256_cbor", BLOCKS.flat(), null)).toEqual([
      17705339885301241772n,
      13360521540053240825n,
      1652464311825922890n,
    ]);
  });

  it("sha256_cbor salts every block with the LoRA name and chains on the parent", () => {
    const plain = chainHashes("sha256_cbor", BLOCKS.flat(), null);
    const alice = chainHashes("sha256_cbor", BLOCKS.flat(), "Alice");
    expect(alice.every((h, i) => h !== plain[i])).toBe(true);
    // Same block content after a different first block: a different hash.
    const other = chainHashes("sha256_cbor", [...BLOCKS[1]!, ...BLOCKS[1]!], null);
    expect(other[1]).not.toBe(plain[1]);
    expect(chainHashes("sha256_cbor", BLOCKS.flat(), null, "43")[0]).not.toBe(plain[0]);
  });

  it("xxh3 equals the router's sequence hashes (LoRA-salted local hashes, chained)", () => {
    const tokens = BLOCKS.flat();
    for (const lora of [null, "Alice"]) {
      const expected = computeSequenceHashes(computeBlockHashes(tokens, 16, { loraName: lora }));
      expect(chainHashes("xxh3", tokens, lora)).toEqual([...expected]);
    }
  });
});
