import { seededRng } from "@dynamo/primitives";
import { Engine } from "./engine.js";
import type { EventSourceOptions, KvEvent, KvEventBatch } from "./types.js";
import { VirtualLoop } from "./virtual-loop.js";

/**
 * A stream of KV-event batches from a simulated engine serving a seeded random workload, pulled one
 * batch at a time: what a vLLM worker's publisher sends, for tests and benchmarks of event transport
 * and indexing. Prompts come from a few prefix families plus random suffixes, so requests hit the
 * cache, extend cached blocks and evict (the pool is small). Same options, same stream.
 */
export class EngineEventSource {
  private readonly loop = new VirtualLoop();
  private readonly engine: Engine;
  private readonly queue: KvEventBatch[] = [];
  private readonly random: () => number;
  private readonly prefixes: Uint32Array[];
  private readonly unfinished = new Set<string>();
  private nextId = 0;
  private readonly arrivalsPerStep: number;

  constructor(private readonly options: EventSourceOptions) {
    this.random = seededRng(options.seed ?? 1);
    this.arrivalsPerStep = options.arrivalsPerStep ?? 2;
    this.engine = new Engine(
      {
        blockSize: options.blockSize,
        numGpuBlocks: options.numGpuBlocks ?? 256,
        blockHash: options.blockHash ?? "sha256_cbor",
        hashSeed: `event-source-${options.seed ?? 1}`,
        dataParallelRank: options.dataParallelRank ?? 0,
        medium: options.medium ?? "GPU",
        onKvEvents: (batch) => this.queue.push(batch),
      },
      this.loop.clock,
    );
    this.loop.add(this.engine);
    const familyBlocks = options.maxPromptBlocks ?? 8;
    this.prefixes = Array.from({ length: options.prefixFamilies ?? 4 }, () =>
      this.randomTokens(familyBlocks * options.blockSize),
    );
  }

  /** Full blocks the engine holds (in use or cached). */
  get cachedBlocks(): number {
    let n = 0;
    for (const _block of this.engine.cachedBlocks()) n++;
    return n;
  }

  /** The next batch the engine publishes (requests arrive as needed); `ts` overrides its timestamp. */
  nextBatch(ts?: number): KvEventBatch {
    while (this.queue.length === 0) {
      if (this.engine.nextEventTime() === Infinity) this.arrive();
      // New requests while few wait, so the stream never builds an endless queue.
      if (this.engine.load().waiting < 8)
        for (let n = Math.floor(this.random() * (2 * this.arrivalsPerStep + 1)); n > 0; n--) this.arrive();
      this.loop.step();
    }
    const batch = this.queue.shift()!;
    return ts === undefined ? batch : { ...batch, ts };
  }

  /**
   * Resets the prefix cache like vLLM's `reset_prefix_cache`: unfinished requests are dropped, then the
   * cache is emptied. The returned batch holds the events not delivered yet and ends with
   * `AllBlocksCleared`; later prompts start from block 0 again.
   */
  clearCache(ts?: number): KvEventBatch {
    for (const id of this.unfinished) this.engine.cancel(id);
    this.loop.runUntilIdle();
    if (!this.engine.resetPrefixCache()) throw new Error("prefix cache still in use after every request ended");
    const events: KvEvent[] = this.queue.flatMap((batch) => batch.events);
    const last = this.queue.at(-1)!;
    this.queue.length = 0;
    return { ts: ts ?? last.ts, events, dataParallelRank: last.dataParallelRank };
  }

  private arrive(): void {
    const { blockSize } = this.options;
    const family = this.prefixes[Math.floor(this.random() * this.prefixes.length)]!;
    const shared = Math.floor(this.random() * (family.length / blockSize + 1)) * blockSize;
    const suffix = this.randomTokens(1 + Math.floor(this.random() * 3 * blockSize));
    const tokens = new Uint32Array(shared + suffix.length);
    tokens.set(family.subarray(0, shared));
    tokens.set(suffix, shared);
    const id = `e${this.nextId++}`;
    this.unfinished.add(id);
    this.engine.addRequest({
      id,
      tokens,
      maxTokens: 1 + Math.floor(this.random() * 2 * blockSize),
      loraName: this.options.loraName ?? null,
      onFinish: () => this.unfinished.delete(id),
    });
  }

  private randomTokens(n: number): Uint32Array {
    return Uint32Array.from({ length: n }, () => Math.floor(this.random() * 150_000));
  }
}
