import { describe, expect, it } from "vitest";
import { formatWorkerId, parseWorkerDocument, workerIdFromName } from "../src/index.js";

describe("parseWorkerDocument", () => {
  it("reads workers with defaults, derived ids, 64-bit ids and per-rank endpoints", () => {
    const result = parseWorkerDocument(
      [
        "defaults:",
        "  model: Qwen/Qwen3-0.6B",
        "  blockSize: 16",
        "workers:",
        "  - name: decode-0",
        "    role: decode",
        "    http: 10.0.0.1:8000",
        "    dpSize: 2",
        "    dpStartRank: 2",
        "    kvEvents: { endpoint: 'tcp://10.0.0.1:5557', replayEndpoint: 'tcp://10.0.0.1:5600' }",
        "    totalKvBlocks: 4096",
        "    modelCard: { dir: models/qwen }",
        "  - name: prefill-0",
        "    id: 18446744073709551615",
        "    role: prefill",
        "    http: 10.0.0.2:8000",
        "    blockSize: 32",
      ].join("\n"),
      "workers.yaml",
      "/etc/dynamo",
    );
    if (!result.ok) throw new Error(JSON.stringify(result.problems));
    const [decode, prefill] = result.workers;
    expect(decode).toMatchObject({
      id: workerIdFromName("decode-0"),
      role: "decode",
      httpEndpoint: "10.0.0.1:8000",
      rankHttpEndpoints: ["10.0.0.1:8000", "10.0.0.1:8000"],
      dpSize: 2,
      dpStartRank: 2,
      modelName: "Qwen/Qwen3-0.6B",
      blockSize: 16,
      capacity: { totalKvBlocks: 4096 },
      kvEvents: {
        endpoints: ["tcp://10.0.0.1:5559", "tcp://10.0.0.1:5560"],
        replayEndpoints: ["tcp://10.0.0.1:5602", "tcp://10.0.0.1:5603"],
      },
    });
    expect(decode!.modelCard!.files["tokenizer.json"]).toEqual({
      kind: "path",
      path: "/etc/dynamo/models/qwen/tokenizer.json",
    });
    expect(prefill).toMatchObject({ id: (1n << 64n) - 1n, role: "prefill", blockSize: 32, dpSize: 1 });
  });

  it("accepts JSON and a bare list", () => {
    const result = parseWorkerDocument(
      '[{"name": "w", "http": "127.0.0.1:9000", "rankHttp": ["127.0.0.1:9000", "127.0.0.1:9002"]}]',
      "w.json",
    );
    expect(result.ok && result.workers[0]).toMatchObject({
      dpSize: 2,
      rankHttpEndpoints: ["127.0.0.1:9000", "127.0.0.1:9002"],
    });
  });

  it("names the line and column of a YAML syntax error", () => {
    const result = parseWorkerDocument("workers:\n  - name: a\n    http: [1.2.3.4:80\n  - name: b\n", "w.yaml");
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems[0]).toMatchObject({ source: "w.yaml", line: 4 });
  });

  it("names the line of a JSON syntax error", () => {
    const result = parseWorkerDocument('{\n  "workers": [\n    {"name": "a", "http": "h:1"\n  ]\n}\n', "w.json");
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems[0]!.line).toBe(4);
  });

  it("names the line of each invalid field, and of a missing one", () => {
    const result = parseWorkerDocument(
      [
        "workers:",
        "  - name: a",
        "    http: 127.0.0.1:80",
        "  - name: b",
        "    http: nope",
        "    role: leader",
        "  - role: decode",
        "    http: h:1",
      ].join("\n"),
      "w.yaml",
    );
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems.map((p) => [p.line, p.message.split(":")[0]])).toEqual([
      [5, "workers[1].http"],
      [6, "workers[1].role"],
      [7, "workers[2].name"],
    ]);
  });

  it("rejects duplicate worker ids, naming the line of the duplicate and the id", () => {
    const result = parseWorkerDocument(
      [
        "workers:",
        "  - name: a",
        "    http: h:1",
        "  - name: b",
        "    id: 42",
        "    http: h:2",
        "  - name: a",
        "    http: h:3",
        "  - name: c",
        "    http: h:4",
        "    id: 42",
      ].join("\n"),
      "w.yaml",
    );
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems.map((p) => [p.line, p.column, p.message])).toEqual([
      [
        7,
        11,
        `workers[2]: duplicate worker id ${formatWorkerId(workerIdFromName("a"))}, already used by workers[0] "a" on line 2`,
      ],
      [11, 9, 'workers[3]: duplicate worker id 42, already used by workers[1] "b" on line 4'],
    ]);

    const distinct = parseWorkerDocument("- {name: a, http: 'h:1'}\n- {name: b, http: 'h:1'}\n", "w.yaml");
    expect(distinct.ok && distinct.workers.map((w) => w.name)).toEqual(["a", "b"]);
  });

  it("rejects unknown fields, mismatched per-rank lists and bad ports", () => {
    const cases: [string, RegExp][] = [
      ["- {name: a, http: 'h:1', colour: red}", /unknown field.*colour/],
      ["- {name: a, http: 'h:1', dpSize: 2, kvEvents: {endpoints: ['tcp://h:1']}}", /1 entries but dpSize is 2/],
      ["- {name: a, http: 'h:70000'}", /port 1-65535/],
      ["- {name: a, http: 'h:1', id: '-5'}", /decimal u64/],
      ["workers: 3", /expected a list/],
    ];
    for (const [text, message] of cases) {
      const result = parseWorkerDocument(text, "w.yaml");
      expect(result.ok ? "ok" : result.problems.map((p) => p.message).join("; ")).toMatch(message);
    }
  });
});
