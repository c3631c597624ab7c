import type { Engine } from "@dynamo/engine-sim";
import { workerRankKey } from "@dynamo/kv-indexer";
import type { EndpointMetrics, EndpointSignals } from "@dynamo/scheduling";

/**
 * What a metrics scraper of the engines' `/metrics` last saw (GAIE and llm-d refresh every 50 ms): a
 * snapshot per worker rank, taken when told.
 */
export class ScrapedMetrics implements EndpointSignals {
  private readonly last = new Map<string, EndpointMetrics>();

  constructor(
    private readonly engines: readonly Engine[],
    private readonly workerIds: readonly bigint[],
  ) {}

  /** Reads every engine's waiting queue and KV usage now. */
  scrape(): void {
    this.engines.forEach((engine, i) => {
      const load = engine.load();
      this.last.set(workerRankKey(this.workerIds[i]!, 0), { waiting: load.waiting, kvUsage: load.kvUsage });
    });
  }

  metrics(rankKey: string): EndpointMetrics | undefined {
    return this.last.get(rankKey);
  }
}

/** Four characters per token (GAIE's ratio), from a 64-letter alphabet: equal token prefixes give equal text prefixes. */
const ALPHABET = new TextEncoder().encode("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");

/** The prompt as the bytes GAIE's approximate prefix producer hashes (the first `maxTokens` tokens). */
export function promptText(tokens: ArrayLike<number>, maxTokens: number, out?: Uint8Array): Uint8Array {
  const n = Math.min(tokens.length, maxTokens);
  const bytes = out && out.length >= n * 4 ? out.subarray(0, n * 4) : new Uint8Array(n * 4);
  for (let i = 0; i < n; i++) {
    const t = tokens[i]!;
    bytes[4 * i] = ALPHABET[t & 63]!;
    bytes[4 * i + 1] = ALPHABET[(t >>> 6) & 63]!;
    bytes[4 * i + 2] = ALPHABET[(t >>> 12) & 63]!;
    bytes[4 * i + 3] = ALPHABET[(t >>> 18) & 63]!;
  }
  return bytes;
}
