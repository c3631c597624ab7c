import type { Watch } from "@kubernetes/client-node";

/** Kubernetes watch event types a reflector forwards. */
export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED";

/** An object with the metadata a reflector needs. */
export interface KubeObject {
  metadata?: { name?: string; resourceVersion?: string };
}

export interface ReflectorOptions<T extends KubeObject> {
  /** What is reflected, for problem messages (e.g. `pods`). */
  what: string;
  watch: Watch;
  /** Collection path, e.g. `/api/v1/namespaces/default/pods`. */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Lists the collection with the same selectors. */
  list(): Promise<{ items: T[]; resourceVersion: string }>;
  /** The complete current set (initial list and every relist). */
  onList(items: T[]): void;
  onEvent(type: WatchEventType, object: T): void;
  onProblem(message: string, cause?: unknown): void;
  /**
   * The reflected set can no longer be trusted to be current (a watch or a list failed); the next
   * `onList` is the first news again.
   */
  onStale(): void;
  /** Delay after a failed list or watch. */
  retryMs: number;
  /** Server-side watch timeout (the server closes the watch; the reflector resumes from the last version). */
  timeoutSeconds: number;
}

/** Counters of one reflector. */
export interface ReflectorStats {
  lists: number;
  watches: number;
  /** Watches answered with 410 Gone (history compacted past our version), each followed by a relist. */
  gone: number;
}

/** `closed` carries whether the watch delivered anything (an empty watch closing at once is not progress). */
type WatchOutcome = { kind: "closed"; delivered: boolean } | { kind: "gone" } | { kind: "failed"; error: unknown };

/**
 * List, then watch from the list's resourceVersion; when a watch ends, watch again from the last
 * version seen (bookmarks included); when the server answers 410 Gone, list again. The same loop the
 * client library's informer runs, plus retries after errors and counters. A failed watch or list
 * makes the set stale (`onStale`): after a pause it is listed afresh, until a list succeeds.
 */
export class Reflector<T extends KubeObject> {
  readonly stats: ReflectorStats = { lists: 0, watches: 0, gone: 0 };
  private stopped = false;
  private controller: AbortController | undefined;
  private wakeRetry: (() => void) | undefined;
  private loop: Promise<void> | undefined;

  constructor(private readonly options: ReflectorOptions<T>) {}

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.controller?.abort();
    this.wakeRetry?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    let resourceVersion = "";
    while (!this.stopped) {
      if (!resourceVersion) {
        try {
          const { items, resourceVersion: listed } = await this.options.list();
          if (this.stopped) return;
          this.stats.lists++;
          this.options.onList(items);
          resourceVersion = listed;
        } catch (error) {
          this.options.onProblem(`list ${this.options.what} failed (retrying): ${describe(error)}`, error);
          this.options.onStale();
          await this.pause();
          continue;
        }
      }
      const outcome = await this.watchFrom(resourceVersion, (version) => (resourceVersion = version));
      if (this.stopped) return;
      if (outcome.kind === "gone") {
        this.stats.gone++;
        resourceVersion = "";
      } else if (outcome.kind === "failed") {
        this.options.onProblem(
          `watch ${this.options.what} failed (relisting): ${describe(outcome.error)}`,
          outcome.error,
        );
        this.options.onStale();
        resourceVersion = "";
        await this.pause();
      } else if (!outcome.delivered) {
        // A server that ends every watch at once must not be re-asked in a tight loop.
        await this.pause();
      }
    }
  }

  private watchFrom(resourceVersion: string, seen: (version: string) => void): Promise<WatchOutcome> {
    this.stats.watches++;
    return new Promise<WatchOutcome>((resolve) => {
      let gone = false;
      let delivered = false;
      let errorEvent: unknown;
      const query: Record<string, string | number | boolean | undefined> = {
        resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: this.options.timeoutSeconds,
        labelSelector: this.options.labelSelector,
        fieldSelector: this.options.fieldSelector,
      };
      const onEvent = (type: string, object: T & { code?: number }): void => {
        if (this.stopped) return;
        delivered = true;
        if (type === "ERROR") {
          if (object?.code === 410) gone = true;
          else errorEvent = new Error(`error event ${JSON.stringify(object)}`);
          this.controller?.abort();
          return;
        }
        if (type === "ADDED" || type === "MODIFIED" || type === "DELETED") this.options.onEvent(type, object);
        const version = object?.metadata?.resourceVersion;
        if (version) seen(version);
      };
      const onDone = (error: unknown): void => {
        if (gone) resolve({ kind: "gone" });
        else if (errorEvent) resolve({ kind: "failed", error: errorEvent });
        else if (error && !isAbort(error)) resolve({ kind: statusCode(error) === 410 ? "gone" : "failed", error });
        else resolve({ kind: "closed", delivered });
      };
      this.options.watch
        .watch(this.options.path, query, onEvent, onDone)
        .then((controller) => {
          this.controller = controller;
          if (this.stopped) controller.abort();
        })
        .catch((error: unknown) => resolve({ kind: "failed", error }));
    });
  }

  private pause(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, this.options.retryMs);
      this.wakeRetry = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

function statusCode(error: unknown): number | undefined {
  const candidate = error as { statusCode?: unknown; code?: unknown } | null;
  const code = candidate?.statusCode ?? candidate?.code;
  return typeof code === "number" ? code : undefined;
}

function isAbort(error: unknown): boolean {
  return (error as { name?: string } | null)?.name === "AbortError";
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
