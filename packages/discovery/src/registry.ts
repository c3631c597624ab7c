import { formatWorkerId } from "./worker-id.js";
import { sameWorker, type WorkerChange, type WorkerInfo } from "./worker.js";

/** Something discovery could not use: an invalid file, a malformed registry entry, a failed watch. */
export interface DiscoveryProblem {
  /** Where it came from: a file path, `nats:<bucket>/<key>`, `kubernetes:pods`, ... */
  source: string;
  message: string;
  /** 1-based line/column in `source`, when the problem is a position in a file. */
  line?: number;
  column?: number;
  cause?: unknown;
}

/** Counters every backend keeps. */
export interface DiscoveryStats {
  /** Problems reported (invalid input, failed list/watch, ...). */
  problems: number;
  /** Full lists applied (initial list, reloads, relists after a watch restart). */
  fullLists: number;
  /** Changes emitted. */
  changes: number;
}

interface RegistryEvents {
  change: (change: WorkerChange) => void;
  ready: () => void;
  unready: () => void;
  problem: (problem: DiscoveryProblem) => void;
}

/** The contract every discovery backend implements and the EPP composes. */
export interface WorkerRegistry {
  /**
   * True while the list is known to be current: from the first full list on, except that a backend
   * that loses track of its source (Kubernetes: a failed watch or list) drops it until a fresh full
   * list has been applied. The last list stays readable either way.
   */
  readonly ready: boolean;
  /** Starts listing and watching. Resolves once running (not necessarily ready). */
  start(): Promise<void>;
  /** Stops watching and releases connections/watchers. The last list stays readable. */
  stop(): Promise<void>;
  /** Current workers, ordered by id. */
  list(): WorkerInfo[];
  get(id: bigint): WorkerInfo | undefined;
  /** Resolves when ready; rejects after `timeoutMs` (when given) with the last problem in the message. */
  whenReady(timeoutMs?: number): Promise<void>;
  /** Subscribes to an event; returns the unsubscribe function. */
  on<E extends keyof RegistryEvents>(event: E, listener: RegistryEvents[E]): () => void;
  /**
   * Change stream as an async iterator. With `replay` (default true) it first yields one `added` per
   * current worker. Ends when `signal` aborts or the registry stops.
   */
  changes(options?: { replay?: boolean; signal?: AbortSignal }): AsyncIterableIterator<WorkerChange>;
  stats(): DiscoveryStats;
}

/**
 * Shared bookkeeping of a backend: the current worker map, diffing of full lists into
 * added/updated/removed changes, readiness, problem reporting and the event fan-out.
 */
export abstract class WorkerRegistryBase implements WorkerRegistry {
  private readonly workers = new Map<bigint, WorkerInfo>();
  private readonly listeners: { [E in keyof RegistryEvents]: Set<RegistryEvents[E]> } = {
    change: new Set(),
    ready: new Set(),
    unready: new Set(),
    problem: new Set(),
  };
  private readonly iteratorClosers = new Set<() => void>();
  private isReady = false;
  private lastProblem: DiscoveryProblem | undefined;
  private readonly counters: DiscoveryStats = { problems: 0, fullLists: 0, changes: 0 };

  abstract start(): Promise<void>;

  protected abstract stopBackend(): Promise<void>;

  async stop(): Promise<void> {
    await this.stopBackend();
    for (const close of [...this.iteratorClosers]) close();
  }

  get ready(): boolean {
    return this.isReady;
  }

  list(): WorkerInfo[] {
    return [...this.workers.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  get(id: bigint): WorkerInfo | undefined {
    return this.workers.get(id);
  }

  stats(): DiscoveryStats {
    return { ...this.counters };
  }

  on<E extends keyof RegistryEvents>(event: E, listener: RegistryEvents[E]): () => void {
    const set = this.listeners[event] as Set<RegistryEvents[E]>;
    set.add(listener);
    return () => set.delete(listener);
  }

  whenReady(timeoutMs?: number): Promise<void> {
    if (this.isReady) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              off();
              const detail = this.lastProblem ? `; last problem: ${describeProblem(this.lastProblem)}` : "";
              reject(new Error(`discovery not ready after ${timeoutMs} ms${detail}`));
            }, timeoutMs);
      const off = this.on("ready", () => {
        off();
        clearTimeout(timer);
        resolve();
      });
    });
  }

  changes(options: { replay?: boolean; signal?: AbortSignal } = {}): AsyncIterableIterator<WorkerChange> {
    const queue: WorkerChange[] =
      (options.replay ?? true) ? this.list().map((worker) => ({ type: "added", worker })) : [];
    let wake: (() => void) | undefined;
    let closed = false;
    const off = this.on("change", (change) => {
      queue.push(change);
      wake?.();
    });
    const close = (): void => {
      closed = true;
      off();
      this.iteratorClosers.delete(close);
      options.signal?.removeEventListener("abort", close);
      wake?.();
    };
    this.iteratorClosers.add(close);
    options.signal?.addEventListener("abort", close);
    if (options.signal?.aborted) close();
    const iterator: AsyncIterableIterator<WorkerChange> = {
      next: async () => {
        while (queue.length === 0 && !closed) await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        const value = queue.shift();
        return value === undefined ? { done: true, value: undefined } : { done: false, value };
      },
      return: async () => {
        close();
        queue.length = 0;
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /** Replaces the whole list after a (re)list: emits the difference, then marks the registry ready (again). */
  protected applyFullList(workers: readonly WorkerInfo[], source: string): void {
    this.reconcile(workers, source);
    this.counters.fullLists++;
    this.markReady();
  }

  /** Makes the current list equal to `workers`, emitting only the differences. */
  protected reconcile(workers: readonly WorkerInfo[], source: string): void {
    const next = new Map<bigint, WorkerInfo>();
    for (const worker of workers) {
      const existing = next.get(worker.id);
      if (existing) {
        this.reportProblem({
          source,
          message: `duplicate worker id ${formatWorkerId(worker.id)} ("${existing.name}" and "${worker.name}"); keeping "${existing.name}"`,
        });
        continue;
      }
      next.set(worker.id, worker);
    }
    for (const [id, worker] of this.workers) {
      if (!next.has(id)) this.removeWorker(id, worker);
    }
    for (const worker of next.values()) this.upsertWorker(worker);
  }

  /** Adds or replaces one worker; emits nothing when the snapshot is unchanged. */
  protected upsertWorker(worker: WorkerInfo): void {
    const previous = this.workers.get(worker.id);
    if (previous && sameWorker(previous, worker)) return;
    this.workers.set(worker.id, worker);
    this.emitChange(previous ? { type: "updated", worker, previous } : { type: "added", worker });
  }

  protected removeWorkerById(id: bigint): void {
    const worker = this.workers.get(id);
    if (worker) this.removeWorker(id, worker);
  }

  protected markReady(): void {
    if (this.isReady) return;
    this.isReady = true;
    for (const listener of [...this.listeners.ready]) this.callListener("ready", () => listener());
  }

  /** The list can no longer be trusted to be current; it stays in force until the next full list. */
  protected markNotReady(): void {
    if (!this.isReady) return;
    this.isReady = false;
    for (const listener of [...this.listeners.unready]) this.callListener("unready", () => listener());
  }

  protected reportProblem(problem: DiscoveryProblem): void {
    this.counters.problems++;
    this.lastProblem = problem;
    for (const listener of [...this.listeners.problem]) {
      try {
        listener(problem);
      } catch {
        // A failing problem listener has nowhere to be reported to.
      }
    }
  }

  /** A throwing listener must not stop the others nor leave the list half-applied: it becomes a problem. */
  private callListener(event: keyof RegistryEvents, call: () => void): void {
    try {
      call();
    } catch (error) {
      this.reportProblem({
        source: `listener:${event}`,
        message: `listener threw: ${(error as Error).message}`,
        cause: error,
      });
    }
  }

  private removeWorker(id: bigint, worker: WorkerInfo): void {
    this.workers.delete(id);
    this.emitChange({ type: "removed", worker });
  }

  private emitChange(change: WorkerChange): void {
    this.counters.changes++;
    for (const listener of [...this.listeners.change]) this.callListener("change", () => listener(change));
  }
}

/** `source:line:column: message`, the form problems are printed in. */
export function describeProblem(problem: DiscoveryProblem): string {
  const position =
    problem.line === undefined ? "" : `:${problem.line}${problem.column === undefined ? "" : `:${problem.column}`}`;
  return `${problem.source}${position}: ${problem.message}`;
}
