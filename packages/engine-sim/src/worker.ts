import { systemClock } from "./clock.js";
import { Engine } from "./engine.js";
import { EngineRequestError } from "./request-validation.js";
import type { Clock, EngineLoad, EngineOptions, EngineRequest } from "./types.js";

/** Options of a worker: engine options shared by its ranks, plus the number of ranks. */
export interface WorkerOptions extends Omit<EngineOptions, "dataParallelRank"> {
  /** Data-parallel ranks (independent engines, each with its own KV cache and events). Default 1. */
  readonly dataParallelSize?: number;
}

/** A request for a worker: optionally pinned to a data-parallel rank. */
export interface WorkerRequest extends EngineRequest {
  /** The rank to serve it; default the rank with the fewest waiting + running requests (lowest on ties). */
  readonly dpRank?: number;
}

/**
 * A worker with `dataParallelSize` ranks, each an `Engine` numbered by its `dataParallelRank` (its KV
 * event batches carry it). Requests go to the rank they name, or the least busy one.
 */
export class EngineWorker {
  readonly ranks: readonly Engine[];

  constructor(options: WorkerOptions = {}, clock: Clock = systemClock) {
    const size = options.dataParallelSize ?? 1;
    if (!Number.isSafeInteger(size) || size < 1)
      throw new RangeError(`dataParallelSize must be a positive integer, got ${size}`);
    const { dataParallelSize: _size, ...engineOptions } = options;
    this.ranks = Array.from(
      { length: size },
      (_, rank) => new Engine({ ...engineOptions, dataParallelRank: rank }, clock),
    );
  }

  /** Queues a request on its rank (returned). Throws `EngineRequestError` for a bad rank or request. */
  addRequest(request: WorkerRequest): number {
    if (this.ranks.some((engine) => engine.requestState(request.id) !== undefined))
      throw new EngineRequestError(`request id ${JSON.stringify(request.id)} is already in use`);
    const rank = request.dpRank ?? this.leastBusyRank();
    const engine = this.ranks[rank];
    if (!Number.isSafeInteger(rank) || engine === undefined)
      throw new EngineRequestError(`dpRank ${String(rank)} is not a rank of this worker (0..${this.ranks.length - 1})`);
    engine.addRequest(request);
    return rank;
  }

  /** Cancels an unfinished request on whichever rank holds it. */
  cancel(requestId: string): boolean {
    return this.ranks.some((engine) => engine.cancel(requestId));
  }

  /** Load signals of every rank. */
  load(): EngineLoad[] {
    return this.ranks.map((engine) => engine.load());
  }

  private leastBusyRank(): number {
    let best = 0;
    let bestLoad = Infinity;
    this.ranks.forEach((engine, rank) => {
      const { waiting, running } = engine.load();
      if (waiting + running < bestLoad) {
        bestLoad = waiting + running;
        best = rank;
      }
    });
    return best;
  }
}
