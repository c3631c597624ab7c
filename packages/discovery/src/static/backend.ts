import { watch, type FSWatcher } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { WorkerRegistryBase } from "../registry.js";
import { parseWorkerDocument } from "./parse.js";

/** Options of the static backend: a file (watched) or an inline document (e.g. from the environment). */
export type StaticDiscoveryOptions =
  | {
      /** YAML or JSON worker list; reloaded when it changes. */
      file: string;
      /** Quiet time after the last file event before reloading. Default 100 ms. */
      debounceMs?: number;
      /** Safety-net re-read interval for file systems that miss events; 0 disables. Default 5000 ms. */
      pollIntervalMs?: number;
    }
  | {
      /** A YAML/JSON worker document held in memory. */
      text: string;
      /** Name used in problem messages (e.g. the environment variable). */
      sourceName: string;
      /** Directory relative model-card paths resolve against. Default: the working directory. */
      baseDir?: string;
    };

/**
 * Workers from a YAML/JSON file or an in-memory document. The file is re-read when its directory
 * reports any event (editors that write a temporary file and rename it over the original, and
 * Kubernetes ConfigMap symlink swaps, both show up as directory events), debounced, and applied only
 * when its content changed. An invalid document is reported with line and column and the previous
 * good list stays in force.
 */
export class StaticDiscovery extends WorkerRegistryBase {
  private watcher: FSWatcher | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  /** The text of the list in force. */
  private lastText: string | undefined;
  /**
   * The rejected text and the read error reported last, so a file that stays broken is reported once,
   * not on every poll. Each is forgotten once the file reads back to something else.
   */
  private lastRejectedText: string | undefined;
  private lastReadFailure: string | undefined;
  private reloading: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly options: StaticDiscoveryOptions) {
    super();
  }

  async start(): Promise<void> {
    this.stopped = false;
    const options = this.options;
    if ("text" in options) {
      this.applyText(options.text, options.sourceName, options.baseDir);
      return;
    }
    const file = resolve(options.file);
    try {
      this.watcher = watch(dirname(file), { persistent: false }, () => this.scheduleReload(file));
      this.watcher.on("error", (error) =>
        this.reportProblem({ source: file, message: `watching stopped: ${error.message}`, cause: error }),
      );
    } catch (error) {
      this.reportProblem({
        source: file,
        message: `cannot watch directory: ${(error as Error).message}`,
        cause: error,
      });
    }
    const pollIntervalMs = options.pollIntervalMs ?? 5000;
    if (pollIntervalMs > 0) {
      this.pollTimer = setInterval(() => this.reload(file), pollIntervalMs);
      this.pollTimer.unref();
    }
    await this.reload(file);
  }

  protected async stopBackend(): Promise<void> {
    this.stopped = true;
    this.watcher?.close();
    this.watcher = undefined;
    clearTimeout(this.debounceTimer);
    clearInterval(this.pollTimer);
    await this.reloading;
  }

  private scheduleReload(file: string): void {
    if (this.stopped || !("file" in this.options)) return;
    clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => void this.reload(file), this.options.debounceMs ?? 100);
  }

  /** Reloads are serialised so an older read never overwrites a newer one. */
  private reload(file: string): Promise<void> {
    this.reloading = this.reloading
      .then(async () => {
        if (this.stopped) return;
        let text: string;
        try {
          text = await readFile(file, "utf8");
        } catch (error) {
          const message = `cannot read (keeping the previous list): ${(error as Error).message}`;
          if (message !== this.lastReadFailure) this.reportProblem({ source: file, message, cause: error });
          this.lastReadFailure = message;
          return;
        }
        this.lastReadFailure = undefined;
        if (text === this.lastText) {
          // Back to the list in force (e.g. a bad edit reverted): a later bad save is news again.
          this.lastRejectedText = undefined;
          return;
        }
        if (text === this.lastRejectedText) return;
        this.applyText(text, file, dirname(file));
      })
      .catch((error: unknown) => {
        // Keeps the chain alive: a rejected link would skip every later reload.
        this.reportProblem({ source: file, message: `reload failed: ${(error as Error).message}`, cause: error });
      });
    return this.reloading;
  }

  private applyText(text: string, source: string, baseDir: string | undefined): void {
    const result = parseWorkerDocument(text, source, baseDir);
    if (!result.ok) {
      for (const problem of result.problems) this.reportProblem(problem);
      this.lastRejectedText = text;
      return;
    }
    this.lastText = text;
    this.lastRejectedText = undefined;
    this.applyFullList(result.workers, source);
  }
}
