import { createRequire } from "node:module";
import { join } from "node:path";
import { startProcess, type RunningProcess } from "@dynamo/testkit";

/** The child processes of a live run: every process started through `run` is stopped by `stopAll`. */
export class Children {
  private readonly running = new Map<RunningProcess, string>();
  private readonly pids = new Set<number>();
  private readonly cleanups: Array<() => Promise<void>> = [];
  private readonly tsx: string;

  constructor(private readonly root: string) {
    this.tsx = createRequire(join(root, "package.json")).resolve("tsx");
  }

  /**
   * Runs a TypeScript entry point of the repository (`apps/<app>/src/main.ts`) as its own Node process; `nodeArgs`
   * go to Node before the entry (e.g. `--cpu-prof`).
   */
  run(
    label: string,
    entry: string,
    args: readonly string[],
    env: Record<string, string> = {},
    nodeArgs: readonly string[] = [],
  ): RunningProcess {
    const child = startProcess(
      process.execPath,
      [...nodeArgs, "--import", this.tsx, "--conditions=@dynamo/source", join(this.root, entry), ...args],
      { cwd: this.root, env },
    );
    this.adopt(label, child);
    return child;
  }

  /** Tracks a process started elsewhere. */
  adopt(label: string, child: RunningProcess): void {
    this.running.set(child, label);
    if (child.child.pid !== undefined) this.pids.add(child.child.pid);
    void child.exited.then(() => this.running.delete(child));
  }

  /** Work `stopAll` does after the children are gone (in-process bridges, a NATS server), last added first. */
  onStop(cleanup: () => Promise<void>): void {
    this.cleanups.push(cleanup);
  }

  /** Records the id of a process started elsewhere and stopped by an `onStop` cleanup. */
  recordPid(pid: number | undefined): void {
    if (pid !== undefined) this.pids.add(pid);
  }

  /** Process ids of every process ever started here (for checks that none is left). */
  startedPids(): number[] {
    return [...this.pids];
  }

  /** The last lines of a child's output, for error messages. */
  static tail(child: RunningProcess, lines = 15): string {
    return child.lines.slice(-lines).join("\n");
  }

  /** Stops every running child (SIGTERM, SIGKILL after `graceMs`), all at once, then runs the cleanups. */
  async stopAll(graceMs = 5_000): Promise<void> {
    await Promise.all([...this.running.keys()].map((child) => child.stop(graceMs)));
    while (this.cleanups.length > 0) await this.cleanups.pop()!().catch(() => undefined);
  }
}

/**
 * Runs `stop` on SIGINT / SIGTERM of this process (Ctrl-C included), then exits with 130 / 143; a second signal
 * exits at once. Returns the function that removes the handlers.
 */
export function stopOnSignal(stop: () => Promise<void>): () => void {
  let signals = 0;
  const handler = (signal: NodeJS.Signals) => {
    const code = signal === "SIGINT" ? 130 : 143;
    if (++signals > 1) process.exit(code);
    process.stderr.write(`\n${signal}: stopping every process started\n`);
    void stop().finally(() => process.exit(code));
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return () => {
    process.off("SIGINT", handler);
    process.off("SIGTERM", handler);
  };
}
