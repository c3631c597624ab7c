import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { Piscina } from "piscina";
import { deserializeError, type PoolReply, type PoolTask } from "./pool-protocol.js";

export interface TokenizerPoolOptions {
  /** Worker threads. Default: one less than the available cores, at least 1. */
  readonly threads?: number;
  /** Models each worker keeps loaded (least recently used ones are dropped). Default 4. */
  readonly maxModelsPerWorker?: number;
}

/** Where the worker entry lives: next to this module, as TypeScript when running from sources. */
function workerEntry(): { filename: string; execArgv: string[] } {
  const here = import.meta.url;
  if (!here.endsWith(".ts")) return { filename: new URL("./pool-worker.js", here).href, execArgv: [] };
  const tsx = createRequire(here).resolve("tsx");
  return { filename: new URL("./pool-worker.ts", here).href, execArgv: ["--import", tsx] };
}

/** Worker threads that run tokenization off the caller's event loop. */
export class TokenizerPool {
  readonly threads: number;
  private readonly piscina: Piscina<PoolTask, PoolReply>;

  constructor(options: TokenizerPoolOptions = {}) {
    this.threads = Math.max(1, options.threads ?? availableParallelism() - 1);
    const { filename, execArgv } = workerEntry();
    this.piscina = new Piscina({
      filename,
      execArgv,
      minThreads: this.threads,
      maxThreads: this.threads,
      idleTimeout: Number.POSITIVE_INFINITY,
      workerData: { maxModels: options.maxModelsPerWorker ?? 4 },
    });
  }

  /** Runs a task on some worker; failures come back as the typed errors the worker raised. */
  async run<T>(task: PoolTask): Promise<T> {
    const reply = await this.piscina.run(task);
    if (!reply.ok) throw deserializeError(reply.error);
    return reply.value as T;
  }

  /** Runs the same task once per thread at the same time, so every worker does it (e.g. loads a model). */
  async broadcast<T>(task: PoolTask): Promise<T[]> {
    return Promise.all(Array.from({ length: this.threads }, () => this.run<T>(task)));
  }

  async close(): Promise<void> {
    await this.piscina.destroy();
  }
}
