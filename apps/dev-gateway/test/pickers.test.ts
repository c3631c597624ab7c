import OpenAI from "openai";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ExtProcServer, type RequestRouter } from "@dynamo/ext-proc";
import { TestWorker, waitFor } from "@dynamo/testkit";
import { DevGateway } from "../src/gateway.js";

const MODEL = "Qwen/Qwen3-0.6B";

/** An endpoint picker (real gRPC, plaintext, its own health port) that sends everything to `worker` and counts. */
async function startPicker(worker: TestWorker): Promise<{ server: ExtProcServer; routed: () => number }> {
  let routed = 0;
  const router: RequestRouter = {
    route: () => {
      routed++;
      return { type: "route", endpoints: [worker.endpoint] };
    },
  };
  const server = await ExtProcServer.start({ router, host: "127.0.0.1", port: 0, tls: false, healthPort: 0 });
  return { server, routed: () => routed };
}

describe("dev gateway over several endpoint pickers", () => {
  let worker: TestWorker;
  let slow: TestWorker;
  const opened: Array<{ close(): Promise<void> }> = [];

  beforeAll(async () => {
    worker = await TestWorker.start("w", "127.0.0.1");
    slow = await TestWorker.start("slow", "127.0.0.1", { streamDelayMs: 20, streamChunks: 500 });
  });
  afterEach(async () => {
    while (opened.length > 0) await opened.pop()!.close();
  });
  afterAll(async () => {
    await worker.close();
    await slow.close();
  });

  async function stack(options: { pickers: number; intervalMs: number; worker?: TestWorker; healthPort?: boolean }) {
    const pickers = [];
    for (let i = 0; i < options.pickers; i++) pickers.push(await startPicker(options.worker ?? worker));
    for (const p of pickers) opened.push(p.server);
    const lines: string[] = [];
    const gateway = await DevGateway.start({
      port: 0,
      extProc: { target: pickers.map((p) => `127.0.0.1:${p.server.port}`).join(",") },
      healthCheck: { intervalMs: options.intervalMs },
      log: (line) => lines.push(line),
    });
    opened.unshift(gateway);
    const openai = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: "unused", maxRetries: 0 });
    const ask = async (content = "hello") => {
      const completion = await openai.chat.completions.create({ model: MODEL, messages: [{ role: "user", content }] });
      return completion.choices[0]!.message.content;
    };
    return { pickers, gateway, lines, openai, ask };
  }

  it("spreads requests round-robin over the pickers", async () => {
    const { pickers, ask } = await stack({ pickers: 3, intervalMs: 100 });
    for (let i = 0; i < 9; i++) expect(await ask()).toMatch(/^Hello from w /);
    expect(pickers.map((p) => p.routed())).toEqual([3, 3, 3]);
  });

  it("sends no new request to a picker whose health reports NOT_SERVING, and takes it back once SERVING", async () => {
    const { pickers, lines, ask } = await stack({ pickers: 2, intervalMs: 100 });
    const [a, b] = pickers as [(typeof pickers)[0], (typeof pickers)[0]];
    const target = `127.0.0.1:${a.server.port}`;
    a.server.health.setReady(false);
    await waitFor(() => lines.includes(`endpoint picker ${target} unhealthy (health NOT_SERVING)`), "NOT_SERVING seen");
    for (let i = 0; i < 4; i++) await ask();
    expect([a.routed(), b.routed()]).toEqual([0, 4]);
    a.server.health.setReady(true);
    await waitFor(() => lines.includes(`endpoint picker ${target} healthy (health SERVING)`), "SERVING seen");
    for (let i = 0; i < 4; i++) await ask();
    expect([a.routed(), b.routed()]).toEqual([2, 6]);
  });

  it("sends a request again, body included, to another picker when its picker is gone before answering", async () => {
    // Health checks far apart: only the failed stream takes the dead picker out of rotation.
    const { pickers, lines, ask } = await stack({ pickers: 2, intervalMs: 600_000 });
    const [a, b] = pickers as [(typeof pickers)[0], (typeof pickers)[0]];
    await a.server.close();
    const long = "word ".repeat(40_000); // 200 kB: several body chunks replayed on the second picker
    for (let i = 0; i < 4; i++) expect(await ask(`${long}${i}`)).toMatch(/^Hello from w /);
    expect(b.routed()).toBe(4);
    expect(
      lines.filter((l) => l.includes(`endpoint picker 127.0.0.1:${a.server.port} failed before answering`)),
    ).toHaveLength(1);
    const seen = worker.seen.slice(-4).map((s) => (s.body!["messages"] as Array<{ content: string }>)[0]!.content);
    expect(seen).toEqual([0, 1, 2, 3].map((i) => `${long}${i}`));
  });

  it("resets a response in flight on a picker that dies (the upstream was chosen, the picker fails closed)", async () => {
    const { pickers, lines, openai } = await stack({ pickers: 2, intervalMs: 100, worker: slow });
    const stream = await openai.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "long" }],
      stream: true,
    });
    const owner = pickers.find((p) => p.routed() === 1)!;
    let chunks = 0;
    const read = (async () => {
      for await (const _ of stream) if (++chunks === 3) await owner.server.close();
    })();
    await expect(read).rejects.toThrow();
    expect(chunks).toBeGreaterThanOrEqual(3);
    expect(lines.some((l) => l.includes(`response aborted via 127.0.0.1:${owner.server.port}`))).toBe(true);
    // The next requests go to the surviving picker.
    await waitFor(() => lines.some((l) => l.includes("unhealthy")), "the dead picker out of rotation");
    const survivor = pickers.find((p) => p !== owner)!;
    const before = survivor.routed();
    const controller = new AbortController();
    const next = await openai.chat.completions.create(
      { model: MODEL, messages: [{ role: "user", content: "again" }], stream: true },
      { signal: controller.signal },
    );
    expect(survivor.routed()).toBe(before + 1);
    controller.abort();
    await (async () => {
      for await (const _ of next) void _;
    })().catch(() => undefined);
  });
});
