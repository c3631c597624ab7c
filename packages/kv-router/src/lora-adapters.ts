/**
 * Which LoRA adapters each worker holds, and the candidates of a request for an adapter. A worker holds
 * at most `maxPerWorker` adapters at once (vLLM's `--max-loras`): the most recently seen ones count as
 * loaded, older ones as evicted.
 */

/** The candidates of an adapter request. */
export type AdapterCandidates =
  /** These workers hold the adapter: only they may take the request. */
  | { readonly kind: "holders"; readonly workers: ReadonlySet<bigint> }
  /** None holds it: these may load it, each at `penalty` extra cost. */
  | { readonly kind: "load"; readonly workers: ReadonlySet<bigint>; readonly penalty: number }
  /** None holds it and loading is not allowed. */
  | { readonly kind: "none" };

export class LoraAdapters {
  /** Adapters per worker, least recently seen first. */
  private readonly byWorker = new Map<bigint, string[]>();

  constructor(private readonly maxPerWorker: number) {}

  /** The worker holds `name` now (its events carry the adapter, or a request for it was sent there). */
  seen(workerId: bigint, name: string): void {
    let held = this.byWorker.get(workerId);
    if (!held) this.byWorker.set(workerId, (held = []));
    const at = held.indexOf(name);
    if (at === held.length - 1 && at >= 0) return;
    if (at >= 0) held.splice(at, 1);
    held.push(name);
    if (held.length > this.maxPerWorker) held.splice(0, held.length - this.maxPerWorker);
  }

  /** The worker holds no adapter any more (restart, cache reset, removal). */
  forget(workerId: bigint): void {
    this.byWorker.delete(workerId);
  }

  /** Adapters the worker holds, least recently seen first. */
  adaptersOf(workerId: bigint): readonly string[] {
    return this.byWorker.get(workerId) ?? [];
  }

  /**
   * Candidates for adapter `name` among `workers`: those holding it; else, when loading is allowed, those
   * with a free adapter slot (every worker when none has one), each charged `penalty`.
   */
  candidates(name: string, workers: Iterable<bigint>, allowLoad: boolean, penalty: number): AdapterCandidates {
    const holders = new Set<bigint>();
    const withRoom = new Set<bigint>();
    const all = new Set<bigint>();
    for (const workerId of workers) {
      all.add(workerId);
      const held = this.byWorker.get(workerId);
      if (held?.includes(name)) holders.add(workerId);
      else if ((held?.length ?? 0) < this.maxPerWorker) withRoom.add(workerId);
    }
    if (holders.size > 0) return { kind: "holders", workers: holders };
    if (!allowLoad || all.size === 0) return { kind: "none" };
    return { kind: "load", workers: withRoom.size > 0 ? withRoom : all, penalty };
  }
}
