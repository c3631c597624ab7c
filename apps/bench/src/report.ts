import { mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import * as prettier from "prettier";
import { renderChartSvg } from "./charts.js";
import type { BenchResult } from "./framework.js";

const escapeHtml = (s: string) =>
  s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
/**
 * Renders one benchmark's figures and charts as a standalone HTML page: each chart an inline SVG drawn
 * by ECharts' server-side renderer inside `<figure class="chart">`, no scripts.
 */
export function renderReport(name: string, result: BenchResult, machine: string, command: string): string {
  const charts = (result.charts ?? [])
    .map(
      (c, i) =>
        `<figure class="chart" id="chart-${i + 1}"><figcaption>${escapeHtml(c.title)}</figcaption>${renderChartSvg(c)}</figure>`,
    )
    .join("\n");
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(name)} benchmark</title>
<style>body{font-family:system-ui,sans-serif;max-width:900px;margin:2em auto;color:#222}figure{margin:1.5em 0}figcaption{font-weight:600;margin-bottom:.3em}pre{background:#f6f6f6;padding:1em;overflow:auto}</style></head><body>
<h1>${escapeHtml(name)} benchmark</h1><p>Machine: ${escapeHtml(machine)}<br>Command: <code>${escapeHtml(command)}</code><br>Date: ${new Date().toISOString()}</p>
${charts}
<h2>Figures</h2><pre>${escapeHtml(JSON.stringify(result.figures, null, 2))}</pre></body></html>\n`;
}

/**
 * Replaces the `name` section of docs/benchmarks.md, leaving other sections untouched; a new section goes right
 * after section `after` when given and present, else at the end.
 */
export function writeMarkdownSection(root: string, name: string, body: string, after?: string): void {
  const file = join(root, "docs", "benchmarks.md");
  const start = `<!-- bench:${name}:start -->`;
  const end = `<!-- bench:${name}:end -->`;
  const current = existsSync(file)
    ? readFileSync(file, "utf8")
    : "# Benchmarks\n\nEvery section is written by `npm run bench -- <name> --write-docs`; each run replaces its own section.\n";
  const section = `${start}\n${body.trim()}\n${end}`;
  const from = current.indexOf(start);
  const to = current.indexOf(end);
  const anchor = after === undefined ? -1 : current.indexOf(`<!-- bench:${after}:end -->`);
  const anchorEnd = anchor + `<!-- bench:${after}:end -->`.length;
  const next =
    from >= 0 && to > from
      ? current.slice(0, from) + section + current.slice(to + end.length)
      : anchor >= 0
        ? `${current.slice(0, anchorEnd)}\n\n${section}${current.slice(anchorEnd)}`
        : `${current.trimEnd()}\n\n${section}\n`;
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, next);
}

export function writeHtmlReport(root: string, name: string, html: string): string {
  const file = join(root, "docs", "reports", `${name}.html`);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, html);
  return file;
}

/** Formats docs/benchmarks.md with the repository's Prettier settings (tables aligned), so the tree stays format-clean. */
export async function formatMarkdownFile(root: string): Promise<void> {
  const file = join(root, "docs", "benchmarks.md");
  const config = (await prettier.resolveConfig(file)) ?? {};
  writeFileSync(file, await prettier.format(readFileSync(file, "utf8"), { ...config, filepath: file }));
}
