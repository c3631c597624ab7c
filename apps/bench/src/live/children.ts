import { createRequire } from "node:module";
import { join } from "node:path";
import { startProcess, type RunningProcess } from "@dynamo/testkit";

/**
 * The child processes of a live run. Every process started through `run` is stopped by `stopAll` (at the end of a
 * run, on failure) and by SIGINT / SIGTERM of this process, which then exits with 130 / 143.
 */
export class Children {
  private readonly running = new Map<RunningProcess, string>();
  private readonly pids = new Set<number>();
  private readonly cleanups: Array<() => Promise<void>> = [];
  private readonly tsx: string;
  private readonly onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: stopping ${this.running.size} child processes\n`);
    void this.stopAll(2_000).finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
  };

  constructor(private readonly root: string) {
    this.tsx = createRequire(join(root, "package.json")).resolve("tsx");
    process.once("SIGINT", this.onSignal);
    process.once("SIGTERM", this.onSignal);
  }

  /** Runs a TypeScript entry point of the repository (`apps/<app>/src/main.ts`) as its own Node process. */
  run(label: string, entry: string, args: readonly string[], env: Record<string, string> = {}): RunningProcess {
    const child = startProcess(
      process.execPath,
      ["--import", this.tsx, "--conditions=@dynamo/source", join(this.root, entry), ...args],
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

  /** Stops every child and removes the signal handlers. */
  async close(): Promise<void> {
    await this.stopAll();
    process.off("SIGINT", this.onSignal);
    process.off("SIGTERM", this.onSignal);
  }
}
