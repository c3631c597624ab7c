import type { VllmEventBatch } from "./codec.js";

/**
 * The `BlockStored` batch a vLLM engine publishes after caching the full blocks of `tokens` (at most
 * `maxBlocks`), with engine block hashes `hashBase`, `hashBase + 1`, ...
 */
export function storedBatch(
  tokens: ArrayLike<number>,
  blockSize: number,
  hashBase: bigint,
  maxBlocks = Number.POSITIVE_INFINITY,
): VllmEventBatch {
  const blocks = Math.min(maxBlocks, Math.floor(tokens.length / blockSize));
  return {
    ts: 0,
    dataParallelRank: 0,
    events: [
      {
        type: "BlockStored",
        blockHashes: Array.from({ length: blocks }, (_, i) => hashBase + BigInt(i)),
        parentBlockHash: null,
        tokenIds: Array.from({ length: blocks * blockSize }, (_, i) => tokens[i]!),
        blockSize,
        loraId: null,
        medium: "GPU",
        loraName: null,
      },
    ],
  };
}
