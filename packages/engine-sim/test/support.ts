import {
  Engine,
  EngineRequestError,
  VirtualLoop,
  type EngineOptions,
  type EngineWorker,
  type KvEventBatch,
  type RequestResult,
  type TokenOutput,
} from "../src/index.js";

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

/** One operation of a random workload, `dt` ms after the previous one. */
export type WorkloadOp =
  | { kind: "arrive"; dt: number; tokens: number[]; maxTokens: number; lora: string | null; stream?: boolean }
  | { kind: "cancel"; dt: number; pick: number }
  | { kind: "reset"; dt: number; rank: number };

export interface WorkloadHooks {
  onFinish?: (result: RequestResult) => void;
  /** Given to the requests of `stream` arrivals. */
  onToken?: (token: TokenOutput) => void;
  /** After each arrival (accepted or not), with the request id. */
  afterArrival?: (id: string) => void;
}

/**
 * Plays a workload on a worker in virtual time: arrivals (requests the engine refuses are skipped),
 * cancellations of an earlier request, prefix-cache resets of a rank. Returns the accepted ids.
 */
export function playWorkload(
  loop: VirtualLoop,
  worker: EngineWorker,
  ops: readonly WorkloadOp[],
  hooks: WorkloadHooks = {},
): string[] {
  const ids: string[] = [];
  let t = 0;
  ops.forEach((o, i) => {
    t += o.dt;
    loop.advanceTo(t);
    if (o.kind === "cancel") {
      if (ids.length > 0) worker.cancel(ids[o.pick % ids.length]!);
    } else if (o.kind === "reset") {
      worker.ranks[o.rank % worker.ranks.length]!.resetPrefixCache();
    } else {
      const id = `r${i}`;
      try {
        worker.addRequest({
          id,
          tokens: o.tokens,
          maxTokens: o.maxTokens,
          loraName: o.lora,
          ...(hooks.onFinish ? { onFinish: hooks.onFinish } : {}),
          ...(o.stream && hooks.onToken ? { onToken: hooks.onToken } : {}),
        });
        ids.push(id);
      } catch (err) {
        if (!(err instanceof EngineRequestError)) throw err;
      }
      hooks.afterArrival?.(id);
    }
  });
  return ids;
}
