import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { chromium } from "playwright-core";
import { describe, expect, it } from "vitest";
import { bench } from "../src/benches/routing.js";
import { Progress } from "../src/framework.js";
import { renderReport } from "../src/report.js";
import { multiTurnWorkload, sharedPrefixWorkload, writePromptTokens } from "../src/routing/workloads.js";

const root = fileURLToPath(new URL("../../..", import.meta.url));
const CHROMIUM = "/usr/bin/chromium";

interface Row {
  policy: string;
  load: number;
  ttftP50Ms: number;
  ttftP99Ms: number;
  outputTokPerSec: number;
  reuseRatio: number;
}

/** Opens `html` in headless Chromium; returns the console errors and, per chart, what its SVG drew. */
async function openInChromium(html: string) {
  const file = join(mkdtempSync(join(tmpdir(), "bench-report-")), "report.html");
  writeFileSync(file, html);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  try {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("console", (m) => void (m.type() === "error" && errors.push(m.text())));
    page.on("pageerror", (e) => void errors.push(e.message));
    await page.goto(pathToFileURL(file).href, { waitUntil: "load" });
    const charts = await page.$$eval("figure.chart", (figures) =>
      figures.map((f) => {
        const svg = f.querySelector("svg");
        const box = svg?.getBoundingClientRect();
        return {
          title: f.querySelector("figcaption")?.textContent ?? "",
          width: box?.width ?? 0,
          height: box?.height ?? 0,
          marks: svg ? svg.querySelectorAll("path, rect").length : 0,
          texts: svg ? svg.querySelectorAll("text").length : 0,
        };
      }),
    );
    return { errors, charts };
  } finally {
    await browser.close();
  }
}

describe("routing simulator", () => {
  it(
    "replays the trace's head under every policy and the report renders every chart in Chromium",
    { timeout: 600_000 },
    async () => {
      const result = await bench.run({
        args: ["--limit", "200", "--arrival-speedup", "6,10", "--workers", "4"],
        json: true,
        progress: new Progress("routing test"),
        root,
      });
      const f = result.figures as Record<string, unknown>;
      const rows = f.results as Row[];
      const policies = ["ours", "ours-approx", "round-robin", "random", "least-loaded"];
      policies.push("gaie-default", "llm-d-precise", "dynamo-classic", "pooled");
      expect(rows.map((r) => `${r.policy}@${r.load}`)).toEqual(
        [6, 10].flatMap((l) => policies.map((p) => `${p}@${l}`)),
      );
      for (const r of rows) {
        expect(r.ttftP50Ms).toBeGreaterThan(0);
        expect(r.ttftP99Ms).toBeGreaterThanOrEqual(r.ttftP50Ms);
        expect(r.outputTokPerSec).toBeGreaterThan(0);
        expect(r.reuseRatio).toBeGreaterThanOrEqual(0);
        expect(r.reuseRatio).toBeLessThan(1);
      }
      const at = (p: string, l: number) => rows.find((r) => r.policy === p && r.load === l)!;
      // KV-aware routing reuses more of the cache than rotation; nothing beats the pooled cache by much.
      expect(at("ours", 10).reuseRatio).toBeGreaterThan(at("round-robin", 10).reuseRatio);
      expect(at("pooled", 10).reuseRatio).toBeGreaterThan(at("round-robin", 10).reuseRatio);
      expect(typeof f.oursVsRoundRobinTtftP50).toBe("number");
      expect(typeof f.oursReuseVsUpperBound).toBe("number");
      expect(result.markdown).toContain("| ×10 | ours |");

      const html = renderReport("routing", result, "test machine", "npm run bench -- routing");
      const { errors, charts } = await openInChromium(html);
      expect(errors).toEqual([]);
      expect(charts).toHaveLength(result.charts!.length);
      for (const c of charts) {
        expect(c.width, c.title).toBeGreaterThan(300);
        expect(c.height, c.title).toBeGreaterThan(200);
        expect(c.marks, c.title).toBeGreaterThan(3);
        expect(c.texts, c.title).toBeGreaterThan(3);
      }
    },
  );
  it("runs several router replicas that share their bookings", { timeout: 300_000 }, async () => {
    const result = await bench.run({
      args: [
        "--limit",
        "120",
        "--arrival-speedup",
        "8",
        "--workers",
        "4",
        "--policies",
        "ours,gaie-default",
        "--replicas",
        "2",
        "--sync-delay-ms",
        "20",
      ],
      json: true,
      progress: new Progress("routing replicas test"),
      root,
    });
    expect(result.figures.replicas).toBe(2);
    const rows = result.figures.results as unknown as Row[];
    expect(rows.map((r) => r.policy)).toEqual(["ours", "gaie-default"]);
    for (const r of rows) expect(r.ttftP50Ms).toBeGreaterThan(0);
  });
});

describe("synthetic workloads", () => {
  it("shared-prefix: every prompt of a group starts with the group's system prompt", () => {
    const w = sharedPrefixWorkload(
      {
        groups: 3,
        promptsPerGroup: 2,
        systemPromptLength: 100,
        questionLength: 20,
        outputLength: 5,
        rate: 10,
        seed: 1,
      },
      1,
    );
    expect(w.requests).toHaveLength(6);
    const tokens = w.requests.map((r) => writePromptTokens(r, new Uint32Array(r.inputLength)));
    const groupOf = (i: number) => w.requests[i]!.segments[0]![0];
    for (let i = 0; i < 6; i++)
      for (let j = 0; j < 6; j++) {
        const samePrefix = tokens[i]!.subarray(0, 100).every((t, k) => t === tokens[j]![k]);
        expect(samePrefix).toBe(groupOf(i) === groupOf(j));
      }
    const arrivals = w.requests.map((r) => r.arrivalMs);
    expect(arrivals).toEqual([...arrivals].sort((a, b) => a - b));
  });

  it("multi-turn: each turn's prompt extends the previous turn's", () => {
    const w = multiTurnWorkload(
      {
        sessions: 1,
        turns: 3,
        systemPromptLength: 50,
        turnLength: 10,
        outputLength: 7,
        sessionRate: 1,
        thinkMs: 1000,
        seed: 1,
      },
      2,
    );
    const [a, b, c] = w.requests.map((r) => writePromptTokens(r, new Uint32Array(r.inputLength)));
    expect([a!.length, b!.length, c!.length]).toEqual([60, 77, 94]);
    expect(b!.subarray(0, 60)).toEqual(a);
    expect(c!.subarray(0, 77)).toEqual(b);
    expect(w.requests[1]!.arrivalMs - w.requests[0]!.arrivalMs).toBeCloseTo(500, 6);
  });
});
