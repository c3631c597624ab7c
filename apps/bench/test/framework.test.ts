import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cdfPoints, markdownTable, numberOption, percentile, progressBar, textOption } from "../src/framework.js";
import { blockTokens, requestTokens } from "../src/mooncake.js";
import { renderReport, writeMarkdownSection } from "../src/report.js";

describe("bench framework", () => {
  it("computes nearest-rank percentiles", () => {
    const sorted = Float64Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(sorted, 50)).toBe(50);
    expect(percentile(sorted, 99)).toBe(99);
    expect(percentile(sorted, 100)).toBe(100);
    expect(percentile([], 50)).toBeNaN();
    expect(cdfPoints(sorted, 4)).toEqual([
      [25, 0.25],
      [50, 0.5],
      [75, 0.75],
      [100, 1],
    ]);
  });

  it("draws a progress bar", () => {
    expect(progressBar(0)).toBe(`[${".".repeat(20)}]`);
    expect(progressBar(0.5, 4)).toBe("[##..]");
    expect(progressBar(2, 4)).toBe("[####]");
  });

  it("replaces only its own markdown section", () => {
    const root = mkdtempSync(join(tmpdir(), "bench-md-"));
    writeMarkdownSection(root, "a", "first A");
    writeMarkdownSection(root, "b", "only B");
    writeMarkdownSection(root, "a", "second A");
    const text = readFileSync(join(root, "docs", "benchmarks.md"), "utf8");
    expect(text).toContain("second A");
    expect(text).not.toContain("first A");
    expect(text).toContain("only B");
    expect(text.indexOf("second A")).toBeLessThan(text.indexOf("only B"));
  });

  it("writes a subsection right after the section it belongs to, and keeps it there when that section is rewritten", () => {
    const root = mkdtempSync(join(tmpdir(), "bench-md-"));
    writeMarkdownSection(root, "a", "first A");
    writeMarkdownSection(root, "b", "only B");
    writeMarkdownSection(root, "a-sub", "sub of A", "a");
    writeMarkdownSection(root, "a", "second A");
    writeMarkdownSection(root, "a-sub", "second sub of A", "a");
    const text = readFileSync(join(root, "docs", "benchmarks.md"), "utf8");
    const order = ["second A", "<!-- bench:a:end -->", "second sub of A", "only B"].map((s) => text.indexOf(s));
    expect(order.every((at) => at >= 0)).toBe(true);
    expect([...order].sort((x, y) => x - y)).toEqual(order);
    expect(text).not.toContain("first A");
    expect(text.match(/sub of A/g)).toHaveLength(1);
  });

  it("renders tables and an HTML report with one SVG per chart", () => {
    expect(markdownTable(["x", "y"], [["a", 1234.5]])).toBe("| x | y |\n|---|---|\n| a | 1,234.5 |");
    const html = renderReport(
      "demo",
      {
        figures: { opsPerSec: 5 },
        markdown: "",
        charts: [
          { kind: "bar", title: "ops", unit: "ops/s", bars: [{ label: "a<b", value: 3 }] },
          {
            kind: "line",
            title: "cdf",
            xLabel: "µs",
            yLabel: "fraction",
            series: [
              {
                name: "p",
                points: [
                  [1, 0.5],
                  [2, 1],
                ],
              },
            ],
          },
        ],
      },
      "machine",
      "cmd",
    );
    expect(html.match(/<svg /g)).toHaveLength(2);
    expect(html).toContain("a&lt;b");
  });
});

describe("mooncake token synthesis", () => {
  it("is deterministic per block id and shares aligned prefixes", () => {
    expect(blockTokens(7)).toEqual(blockTokens(7));
    expect(blockTokens(7)).not.toEqual(blockTokens(8));
    const a = requestTokens({ timestamp: 0, inputLength: 700, outputLength: 1, hashIds: [1, 2] });
    const b = requestTokens({ timestamp: 0, inputLength: 1024, outputLength: 1, hashIds: [1, 3] });
    expect(a).toHaveLength(700);
    expect(a.subarray(0, 512)).toEqual(b.subarray(0, 512));
    expect(a.subarray(512, 700)).not.toEqual(b.subarray(512, 700));
  });
});

describe("benchmark options", () => {
  it("reads numbers and values after their flag, with fallbacks and clear errors", () => {
    const args = ["--workers", "4", "--hash", "xxh3", "--bad", "-1", "--empty"];
    expect(numberOption(args, "workers", 8)).toBe(4);
    expect(numberOption(args, "limit", Infinity)).toBe(Infinity);
    expect(() => numberOption(args, "bad", 1)).toThrow("--bad needs a positive number");
    expect(textOption(args, "hash", "sha256_cbor")).toBe("xxh3");
    expect(textOption(args, "trace", "default.jsonl")).toBe("default.jsonl");
    expect(() => textOption(args, "empty", "x")).toThrow("--empty needs a value");
  });
});
