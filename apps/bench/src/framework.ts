import { cpus, totalmem } from "node:os";

/** A figure printed, returned in the JSON line and written to docs/benchmarks.md. */
export type Figure = number | string | boolean | null | Figure[] | { [key: string]: Figure };

/** A chart of the HTML report. */
export type Chart =
  | { kind: "bar"; title: string; unit: string; bars: Array<{ label: string; value: number }> }
  | {
      kind: "line";
      title: string;
      xLabel: string;
      yLabel: string;
      logX?: boolean;
      logY?: boolean;
      series: Array<{ name: string; points: Array<[number, number]> }>;
    };

export interface BenchResult {
  /** Flat or nested figures; the JSON line printed with `--json` is exactly this object. */
  figures: Record<string, Figure>;
  /** Markdown body of this benchmark's section in docs/benchmarks.md (tables, notes). */
  markdown: string;
  /** Charts for the HTML report (docs/reports/<name>.html). */
  charts?: Chart[];
  /**
   * A section of docs/benchmarks.md other than the benchmark's own: `name` (also the report's file name), under a
   * `###` heading `title`, first written right after section `after` (a subsection of it, which a run of that
   * benchmark leaves in place).
   */
  docsSection?: { name: string; title: string; after: string };
}

export interface BenchContext {
  /** Arguments after the benchmark name, `--json` removed. */
  readonly args: readonly string[];
  readonly json: boolean;
  readonly progress: Progress;
  /** Repository root (absolute path). */
  readonly root: string;
}

export interface Bench {
  readonly name: string;
  readonly description: string;
  run(ctx: BenchContext): Promise<BenchResult>;
}

/** A 20-cell text bar for `fraction` (0–1) of the work done. */
export function progressBar(fraction: number, cells = 20): string {
  const full = Math.round(Math.min(1, Math.max(0, fraction)) * cells);
  return `[${"#".repeat(full)}${".".repeat(cells - full)}]`;
}

/** Progress on stderr: a rewritten line with a bar on a terminal, a line every few seconds otherwise. */
export class Progress {
  private lastPrint = 0;
  private readonly tty = Boolean(process.stderr.isTTY);

  constructor(private readonly label: string) {}

  /** Reports `done` of `total` units for the current `phase`; cheap to call often. */
  update(phase: string, done: number, total: number): void {
    const now = Date.now();
    const finished = done >= total;
    if (!finished && now - this.lastPrint < (this.tty ? 200 : 5000)) return;
    this.lastPrint = now;
    const fraction = total > 0 ? Math.min(1, done / total) : 1;
    const pct = (fraction * 100).toFixed(0);
    const line = `[${this.label}] ${progressBar(fraction)} ${phase}: ${done.toLocaleString("en-US")}/${total.toLocaleString("en-US")} (${pct}%)`;
    if (this.tty) process.stderr.write(`\r\x1b[2K${line}${finished ? "\n" : ""}`);
    else process.stderr.write(`${line}\n`);
  }

  /** A one-off status line. */
  note(message: string): void {
    if (this.tty) process.stderr.write("\r\x1b[2K");
    process.stderr.write(`[${this.label}] ${message}\n`);
  }
}

/** Machine description written next to every figure. */
export function machineDescription(): string {
  const cpu = cpus();
  return `${cpu.length} × ${cpu[0]?.model ?? "unknown CPU"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
}

/** Percentile (nearest rank) of an ascending-sorted array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** Rounds to `digits` significant decimals for display and JSON. */
export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** A markdown table from a header row and rows of cells. */
export function markdownTable(header: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number>>): string {
  const fmt = (c: string | number) =>
    typeof c === "number" ? c.toLocaleString("en-US", { maximumFractionDigits: 2 }) : c;
  return [
    `| ${header.join(" | ")} |`,
    `|${header.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${r.map(fmt).join(" | ")} |`),
  ].join("\n");
}

/** Samples of a CDF (for line charts of latency distributions): `points` evenly spaced quantiles. */
export function cdfPoints(sorted: ArrayLike<number>, points = 100): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let i = 1; i <= points; i++) out.push([percentile(sorted, (i / points) * 100), i / points]);
  return out;
}

/** The positive number after `--<name>` in a benchmark's arguments, or `fallback` when the option is absent. */
export function numberOption(args: readonly string[], name: string, fallback: number): number {
  const at = args.indexOf(`--${name}`);
  if (at < 0) return fallback;
  const parsed = Number(args[at + 1]);
  if (!Number.isFinite(parsed) || parsed <= 0) throw new Error(`--${name} needs a positive number`);
  return parsed;
}

/** The value after `--<name>` in a benchmark's arguments, or `fallback` when the option is absent. */
export function textOption(args: readonly string[], name: string, fallback: string): string {
  const at = args.indexOf(`--${name}`);
  if (at < 0) return fallback;
  const value = args[at + 1];
  if (!value || value.startsWith("--")) throw new Error(`--${name} needs a value`);
  return value;
}
