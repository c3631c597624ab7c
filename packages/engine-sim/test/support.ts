import { Engine, VirtualLoop, type EngineOptions, type KvEventBatch, type RequestResult } from "../src/index.js";

/** An engine on a virtual loop, recording every KV batch and every finished request. */
export function simulated(options: EngineOptions = {}) {
  const loop = new VirtualLoop();
  const batches: KvEventBatch[] = [];
  const results = new Map<string, RequestResult>();
  const engine = new Engine({ ...options, onKvEvents: (batch) => batches.push(batch) }, loop.clock);
  loop.add(engine);
  /** Adds a request at the loop's current time; its result lands in `results`. */
  const submit = (id: string, tokens: ArrayLike<number>, maxTokens: number, extra: Record<string, unknown> = {}) =>
    engine.addRequest({ id, tokens, maxTokens, ...extra, onFinish: (r) => results.set(r.requestId, r) });
  return { loop, engine, batches, results, submit };
}

/** `n` distinct token ids starting at `from`. */
export function tokens(n: number, from = 1): Uint32Array {
  return Uint32Array.from({ length: n }, (_, i) => from + i);
}

export { playWorkload, type WorkloadHooks, type WorkloadOp } from "../src/index.js";
