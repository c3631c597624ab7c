/** Where log lines go. Default: `console.warn`. */
export type LogSink = (line: string) => void;

export const defaultLogSink: LogSink = (line) => console.warn(line);

/**
 * Logs at most one line per key per interval, adding how many similar lines were suppressed since,
 * so that a flood of identical problems (a misconfigured worker, a hostile publisher) cannot flood the log.
 */
export class RateLimitedLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly sink: LogSink = defaultLogSink,
    private readonly intervalMs = 10_000,
  ) {}

  warn(key: string, message: string): void {
    const now = Date.now();
    const entry = this.last.get(key);
    if (entry && now - entry.at < this.intervalMs) {
      entry.suppressed++;
      return;
    }
    const suffix = entry && entry.suppressed > 0 ? ` (${entry.suppressed} similar suppressed)` : "";
    this.last.set(key, { at: now, suppressed: 0 });
    this.sink(`${message}${suffix}`);
  }
}
