import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  decodeRegistration,
  encodeRegistration,
  fetchModelCard,
  parseWorkerDocument,
  workerIdFromName,
  type WorkerInfo,
} from "../src/index.js";

describe("model cards", () => {
  let dir: string;
  let server: Server;
  let base: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "discovery-card-"));
    writeFileSync(join(dir, "tokenizer.json"), '{"model": {}}');
    writeFileSync(join(dir, "tokenizer_config.json"), '{"eos_token": "</s>"}');
    server = createServer((request, response) => {
      if (request.url === "/tokenizer.json") response.end('{"from": "http"}');
      else response.writeHead(request.url === "/broken" ? 500 : 404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const text = (bytes: Uint8Array | undefined): string | undefined =>
    bytes ? new TextDecoder().decode(bytes) : undefined;

  it("reads a card directory, leaving out optional files that do not exist", async () => {
    const result = parseWorkerDocument(`- {name: w, http: "h:1", modelCard: {dir: .}}`, "w.yaml", dir);
    if (!result.ok) throw new Error("parse failed");
    const files = await fetchModelCard(result.workers[0]!.modelCard!);
    expect(Object.keys(files).sort()).toEqual(["tokenizer.json", "tokenizer_config.json"]);
    expect(text(files["tokenizer_config.json"])).toBe('{"eos_token": "</s>"}');
  });

  it("fetches URLs over HTTP, skips a missing optional file and fails on a missing required one", async () => {
    const card = {
      files: {
        "tokenizer.json": { kind: "url" as const, url: `${base}/tokenizer.json` },
        "tokenizer_config.json": { kind: "bytes" as const, bytes: new TextEncoder().encode("{}") },
        "chat_template.jinja": { kind: "url" as const, url: `${base}/chat_template.jinja` },
      },
    };
    const files = await fetchModelCard(card);
    expect(text(files["tokenizer.json"])).toBe('{"from": "http"}');
    expect(files["chat_template.jinja"]).toBeUndefined();

    await expect(
      fetchModelCard({ files: { ...card.files, "tokenizer.json": { kind: "url", url: `${base}/missing` } } }),
    ).rejects.toThrow(/model card file tokenizer.json: .*404/);
    await expect(
      fetchModelCard({ files: { ...card.files, "chat_template.jinja": { kind: "url", url: `${base}/broken` } } }),
    ).rejects.toThrow(/chat_template.jinja: .*500/);
    await expect(fetchModelCard({ files: { "tokenizer.json": card.files["tokenizer.json"] } })).rejects.toThrow(
      /no tokenizer_config.json/,
    );
    await expect(
      fetchModelCard({ files: { ...card.files, "tokenizer.json": { kind: "nats-object", bucket: "b", object: "o" } } }),
    ).rejects.toThrow(/needs a NATS connection/);
  });

  it("registry entries round-trip every worker field", () => {
    const worker: WorkerInfo = {
      id: workerIdFromName("w"),
      name: "w",
      role: "prefill",
      namespace: "ns",
      component: "prefill",
      httpEndpoint: "10.0.0.1:8000",
      rankHttpEndpoints: ["10.0.0.1:8000", "10.0.0.1:8001"],
      dpSize: 2,
      dpStartRank: 4,
      kvEvents: {
        endpoints: ["tcp://10.0.0.1:5561", "tcp://10.0.0.1:5562"],
        replayEndpoints: ["tcp://10.0.0.1:5604", "tcp://10.0.0.1:5605"],
      },
      modelName: "m",
      blockSize: 64,
      capacity: { totalKvBlocks: 100, maxNumBatchedTokens: 8192 },
      modelCard: {
        files: {
          "tokenizer.json": {
            kind: "nats-object",
            bucket: "cards",
            object: "m/tokenizer.json",
            digest: "SHA-256=x",
            size: 3,
          },
          "tokenizer_config.json": { kind: "url", url: "https://example.invalid/tokenizer_config.json" },
        },
      },
    };
    expect(decodeRegistration(encodeRegistration({ worker, leaseTtlMs: 5000 }))).toEqual({ worker, leaseTtlMs: 5000 });
    expect(() =>
      encodeRegistration({
        worker: { ...worker, modelCard: { files: { a: { kind: "bytes", bytes: new Uint8Array(1) } } } },
        leaseTtlMs: 1,
      }),
    ).toThrow(/upload it first/);
  });
});
