import { mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import type { BenchResult, Chart } from "./framework.js";

const escapeHtml = (s: string) =>
  s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const W = 720;
const H = 320;
const M = { left: 70, right: 20, top: 30, bottom: 50 };

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 2.5, 5, 10].map((m) => m * p).find((c) => c >= v)!;
}

const fmtTick = (v: number) =>
  Math.abs(v) >= 1e6
    ? `${+(v / 1e6).toPrecision(3)}M`
    : Math.abs(v) >= 1e3
      ? `${+(v / 1e3).toPrecision(3)}k`
      : `${+v.toPrecision(3)}`;

function barChart(chart: Extract<Chart, { kind: "bar" }>): string {
  const max = niceMax(Math.max(...chart.bars.map((b) => b.value)));
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const slot = plotW / Math.max(1, chart.bars.length);
  const parts: string[] = [];
  for (let i = 0; i <= 4; i++) {
    const y = M.top + plotH - (plotH * i) / 4;
    parts.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${y}" y2="${y}" stroke="#ddd"/>`);
    parts.push(
      `<text x="${M.left - 6}" y="${y + 4}" text-anchor="end" font-size="11">${fmtTick((max * i) / 4)}</text>`,
    );
  }
  chart.bars.forEach((b, i) => {
    const h = (plotH * b.value) / max;
    const x = M.left + i * slot + slot * 0.15;
    parts.push(
      `<rect x="${x}" y="${M.top + plotH - h}" width="${slot * 0.7}" height="${h}" fill="${PALETTE[i % PALETTE.length]}"><title>${escapeHtml(b.label)}: ${b.value}</title></rect>`,
    );
    parts.push(
      `<text x="${x + slot * 0.35}" y="${H - M.bottom + 16}" text-anchor="middle" font-size="11">${escapeHtml(b.label)}</text>`,
    );
    parts.push(
      `<text x="${x + slot * 0.35}" y="${M.top + plotH - h - 4}" text-anchor="middle" font-size="10">${fmtTick(b.value)}</text>`,
    );
  });
  parts.push(
    `<text x="14" y="${M.top + plotH / 2}" transform="rotate(-90 14 ${M.top + plotH / 2})" text-anchor="middle" font-size="12">${escapeHtml(chart.unit)}</text>`,
  );
  return svg(chart.title, parts);
}

function lineChart(chart: Extract<Chart, { kind: "line" }>): string {
  const all = chart.series.flatMap((s) => s.points);
  const tx = (x: number) => (chart.logX ? Math.log10(Math.max(x, 1e-9)) : x);
  const xs = all.map((p) => tx(p[0]));
  const xMin = Math.min(...xs);
  const xMax = Math.max(...xs) === xMin ? xMin + 1 : Math.max(...xs);
  const yMax = niceMax(Math.max(...all.map((p) => p[1])));
  const plotW = W - M.left - M.right - 140;
  const plotH = H - M.top - M.bottom;
  const px = (x: number) => M.left + ((tx(x) - xMin) / (xMax - xMin)) * plotW;
  const py = (y: number) => M.top + plotH - (y / yMax) * plotH;
  const parts: string[] = [];
  for (let i = 0; i <= 4; i++) {
    const y = M.top + plotH - (plotH * i) / 4;
    parts.push(`<line x1="${M.left}" x2="${M.left + plotW}" y1="${y}" y2="${y}" stroke="#ddd"/>`);
    parts.push(
      `<text x="${M.left - 6}" y="${y + 4}" text-anchor="end" font-size="11">${fmtTick((yMax * i) / 4)}</text>`,
    );
    const xv = xMin + ((xMax - xMin) * i) / 4;
    parts.push(
      `<text x="${M.left + (plotW * i) / 4}" y="${H - M.bottom + 16}" text-anchor="middle" font-size="11">${fmtTick(chart.logX ? 10 ** xv : xv)}</text>`,
    );
  }
  chart.series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    const d = s.points.map((p, j) => `${j === 0 ? "M" : "L"}${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join("");
    parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"/>`);
    parts.push(`<rect x="${M.left + plotW + 15}" y="${M.top + i * 18}" width="12" height="12" fill="${color}"/>`);
    parts.push(
      `<text x="${M.left + plotW + 32}" y="${M.top + i * 18 + 10}" font-size="11">${escapeHtml(s.name)}</text>`,
    );
  });
  parts.push(
    `<text x="${M.left + plotW / 2}" y="${H - 10}" text-anchor="middle" font-size="12">${escapeHtml(chart.xLabel)}${chart.logX ? " (log)" : ""}</text>`,
  );
  parts.push(
    `<text x="14" y="${M.top + plotH / 2}" transform="rotate(-90 14 ${M.top + plotH / 2})" text-anchor="middle" font-size="12">${escapeHtml(chart.yLabel)}</text>`,
  );
  return svg(chart.title, parts);
}

function svg(title: string, parts: string[]): string {
  return `<figure><figcaption>${escapeHtml(title)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">${parts.join("")}</svg></figure>`;
}

/** Renders one benchmark's figures and charts as a standalone HTML page (inline SVG, no scripts). */
export function renderReport(name: string, result: BenchResult, machine: string, command: string): string {
  const charts = (result.charts ?? []).map((c) => (c.kind === "bar" ? barChart(c) : lineChart(c))).join("\n");
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(name)} benchmark</title>
<style>body{font-family:system-ui,sans-serif;max-width:900px;margin:2em auto;color:#222}figure{margin:1.5em 0}figcaption{font-weight:600;margin-bottom:.3em}pre{background:#f6f6f6;padding:1em;overflow:auto}</style></head><body>
<h1>${escapeHtml(name)} benchmark</h1><p>Machine: ${escapeHtml(machine)}<br>Command: <code>${escapeHtml(command)}</code><br>Date: ${new Date().toISOString()}</p>
${charts}
<h2>Figures</h2><pre>${escapeHtml(JSON.stringify(result.figures, null, 2))}</pre></body></html>\n`;
}

/** Replaces (or appends) the `name` section of docs/benchmarks.md, leaving other sections untouched. */
export function writeMarkdownSection(root: string, name: string, body: string): void {
  const file = join(root, "docs", "benchmarks.md");
  const start = `<!-- bench:${name}:start -->`;
  const end = `<!-- bench:${name}:end -->`;
  const current = existsSync(file)
    ? readFileSync(file, "utf8")
    : "# Benchmarks\n\nEvery section is written by `npm run bench -- <name> --write-docs`; each run replaces its own section.\n";
  const section = `${start}\n${body.trim()}\n${end}`;
  const from = current.indexOf(start);
  const to = current.indexOf(end);
  const next =
    from >= 0 && to > from
      ? current.slice(0, from) + section + current.slice(to + end.length)
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
