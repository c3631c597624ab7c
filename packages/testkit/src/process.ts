import { spawn, type ChildProcess } from "node:child_process";

/** A child process whose stdout and stderr lines are collected as they arrive. */
export interface RunningProcess {
  readonly child: ChildProcess;
  /** Every complete line printed so far, stdout and stderr interleaved. */
  readonly lines: string[];
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  /** Lines that parse as JSON objects (structured logs). */
  json(): Record<string, unknown>[];
  /** Sends SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts `command` with `args`, the current environment plus `env`, collecting its output lines. */
export function startProcess(
  command: string,
  args: readonly string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): RunningProcess {
  const child = spawn(command, args, {
    ...(options.cwd !== undefined && { cwd: options.cwd }),
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  const collector = () => {
    let partial = "";
    return (chunk: Buffer) => {
      const parts = (partial + chunk.toString()).split("\n");
      partial = parts.pop()!;
      lines.push(...parts);
    };
  };
  child.stdout!.on("data", collector());
  child.stderr!.on("data", collector());
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    lines,
    exited,
    json: () =>
      lines.flatMap((line) => {
        try {
          const value = JSON.parse(line) as unknown;
          return typeof value === "object" && value !== null ? [value as Record<string, unknown>] : [];
        } catch {
          return [];
        }
      }),
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
