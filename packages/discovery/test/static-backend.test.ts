import { mkdtempSync, rmSync, writeFileSync, renameSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitFor } from "@dynamo/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { StaticDiscovery, workerIdFromName, type WorkerChange } from "../src/index.js";
import { names, record } from "./helpers.js";

const yamlOf = (workers: [string, number][]): string =>
  "workers:\n" + workers.map(([name, port]) => `  - name: ${name}\n    http: 127.0.0.1:${port}\n`).join("");

describe("StaticDiscovery", () => {
  let dir: string;
  let file: string;
  let registry: StaticDiscovery | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "discovery-static-"));
    file = join(dir, "workers.yaml");
  });
  afterEach(async () => {
    await registry?.stop();
    registry = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  async function startOn(text: string): Promise<StaticDiscovery> {
    writeFileSync(file, text);
    registry = new StaticDiscovery({ file, debounceMs: 30, pollIntervalMs: 0 });
    await registry.start();
    return registry;
  }

  it("is ready after the first load and reports the initial list", async () => {
    const r = await startOn(
      yamlOf([
        ["a", 8000],
        ["b", 8001],
      ]),
    );
    expect(r.ready).toBe(true);
    expect(names(r)).toEqual(["a", "b"]);
    expect(r.get(workerIdFromName("a"))?.httpEndpoint).toBe("127.0.0.1:8000");
  });

  it("picks up in-place edits as added, updated and removed changes", async () => {
    const r = await startOn(
      yamlOf([
        ["a", 8000],
        ["b", 8001],
      ]),
    );
    const { changes } = record(r);
    await writeFile(
      file,
      yamlOf([
        ["a", 9000],
        ["c", 8002],
      ]),
    );
    await waitFor(() => changes.length === 3, "three changes");
    const summary = changes.map((c: WorkerChange) => `${c.type}:${c.worker.name}`).sort();
    expect(summary).toEqual(["added:c", "removed:b", "updated:a"]);
    const updated = changes.find((c) => c.type === "updated");
    expect(updated?.type === "updated" && [updated.previous.httpEndpoint, updated.worker.httpEndpoint]).toEqual([
      "127.0.0.1:8000",
      "127.0.0.1:9000",
    ]);
  });

  it("follows editors that write a temporary file and rename it over the original", async () => {
    const r = await startOn(yamlOf([["a", 8000]]));
    for (const [round, name] of ["x", "y", "z"].entries()) {
      const temporary = join(dir, `.workers.yaml.swp${round}`);
      writeFileSync(temporary, yamlOf([[name, 8000 + round]]));
      renameSync(temporary, file);
      await waitFor(() => names(r).join() === name, `list ${name} after rename ${round}`);
    }
  });

  it("rejects an invalid edit with its line, keeps the previous list, then takes the fix", async () => {
    const r = await startOn(yamlOf([["a", 8000]]));
    const { changes, problems } = record(r);
    await writeFile(file, "workers:\n  - name: a\n    http: 127.0.0.1:8000\n  - name: b\n    http: 127.0.0.1\n");
    await waitFor(() => problems.length > 0, "a problem report");
    expect(problems[0]).toMatchObject({ source: file, line: 5, column: 11 });
    expect(problems[0]!.message).toMatch(/workers\[1\]\.http: must be host:port/);
    expect(names(r)).toEqual(["a"]);
    expect(changes).toEqual([]);

    await writeFile(
      file,
      yamlOf([
        ["a", 8000],
        ["b", 8001],
      ]),
    );
    await waitFor(() => names(r).length === 2, "the fixed list");
    expect(r.stats().problems).toBe(1);
  });

  it("reports a bad edit again when it is saved again after being reverted, and a file deleted again", async () => {
    const good = yamlOf([["a", 8000]]);
    const bad = "workers:\n  - name: a\n    http: 127.0.0.1\n";
    const r = await startOn(good);
    const { changes, problems } = record(r);
    const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 300));
    for (const round of [1, 2]) {
      await writeFile(file, bad);
      await waitFor(() => problems.length === round, `the bad edit reported (round ${round})`);
      expect(problems.at(-1)).toMatchObject({ source: file, line: 3, column: 11 });
      await writeFile(file, good);
      await settle();
    }
    for (const round of [1, 2]) {
      rmSync(file);
      await waitFor(() => problems.length === 2 + round, `the deletion reported (round ${round})`);
      expect(problems.at(-1)!.message).toMatch(/cannot read/);
      writeFileSync(file, good);
      await settle();
    }
    expect(problems).toHaveLength(4);
    expect(names(r)).toEqual(["a"]);
    expect(changes).toEqual([]);
  });

  it("rejects an edit that gives two workers the same id and keeps the previous list", async () => {
    const r = await startOn(
      yamlOf([
        ["a", 8000],
        ["b", 8001],
      ]),
    );
    const { changes, problems } = record(r);
    await writeFile(
      file,
      yamlOf([
        ["a", 8000],
        ["b", 8001],
        ["a", 8002],
      ]),
    );
    await waitFor(() => problems.length > 0, "the duplicate reported");
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ source: file, line: 6, column: 11 });
    expect(problems[0]!.message).toMatch(
      /^workers\[2\]: duplicate worker id \d+, already used by workers\[0\] "a" on line 2$/,
    );
    expect(r.list().map((w) => [w.name, w.httpEndpoint])).toEqual(
      [
        ["a", "127.0.0.1:8000"],
        ["b", "127.0.0.1:8001"],
      ].sort((x, y) => (workerIdFromName(x[0]!) < workerIdFromName(y[0]!) ? -1 : 1)),
    );
    expect(changes).toEqual([]);
  });

  it("stays not ready while the first file is invalid and becomes ready once it is fixed", async () => {
    const r = await startOn("workers:\n  - name: a\n    http: 127.0.0.1:8000\n    role: boss\n");
    expect(r.ready).toBe(false);
    await expect(r.whenReady(50)).rejects.toThrow(/workers\.yaml:4:11: workers\[0\]\.role/);
    await writeFile(file, yamlOf([["a", 8000]]));
    await r.whenReady(5000);
    expect(names(r)).toEqual(["a"]);
  });

  it("re-reads a file whose change the watcher missed when polling is on", async () => {
    writeFileSync(file, yamlOf([["a", 8000]]));
    registry = new StaticDiscovery({ file, debounceMs: 10_000, pollIntervalMs: 50 });
    await registry.start();
    await writeFile(file, yamlOf([["p", 8000]]));
    const r = registry;
    await waitFor(() => names(r).join() === "p", "the polled list", 3000);
  });

  it("reads an in-memory document, e.g. from an environment variable", async () => {
    registry = new StaticDiscovery({ text: "[{name: e, http: '127.0.0.1:1'}]", sourceName: "DYN_DISCOVERY_WORKERS" });
    await registry.start();
    expect(names(registry)).toEqual(["e"]);
  });

  it("yields the current workers and later changes through the async iterator", async () => {
    const r = await startOn(yamlOf([["a", 8000]]));
    const controller = new AbortController();
    const seen: string[] = [];
    const consumer = (async () => {
      for await (const change of r.changes({ signal: controller.signal })) {
        seen.push(`${change.type}:${change.worker.name}`);
        if (seen.length === 2) controller.abort();
      }
    })();
    await writeFile(
      file,
      yamlOf([
        ["a", 8000],
        ["b", 8001],
      ]),
    );
    await consumer;
    expect(seen).toEqual(["added:a", "added:b"]);
  });
});

describe("listener failures", () => {
  it("report a throwing change listener as a problem and still deliver the change to the others", async () => {
    const registry = new StaticDiscovery({ text: "[{name: a, http: 'h:1'}]", sourceName: "inline" });
    const problems: string[] = [];
    const delivered: string[] = [];
    registry.on("change", () => {
      throw new Error("listener bug");
    });
    registry.on("change", (change) => delivered.push(change.worker.name));
    registry.on("problem", (problem) => problems.push(`${problem.source}: ${problem.message}`));
    await registry.start();
    expect(delivered).toEqual(["a"]);
    expect(problems).toEqual(["listener:change: listener threw: listener bug"]);
    expect(registry.ready).toBe(true);
    expect(registry.list().map((w) => w.name)).toEqual(["a"]);
  });
});
