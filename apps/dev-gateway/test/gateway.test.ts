import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ExtProcServer,
  RoundRobinRouter,
  type RequestLifecycle,
  type RequestOutcome,
  type RequestRouter,
  type RouteRequest,
} from "@dynamo/ext-proc";
import { DevGateway } from "../src/gateway.js";
import { TestWorker } from "@dynamo/testkit";

/** The seed's sample request. */
const SEED_PROMPT =
  "In the heart of Eldoria, an ancient land of boundless magic and mysterious creatures, lies the long-forgotten city of Aeloria. Once a beacon of knowledge and power, Aeloria was buried beneath the shifting sands of time, lost to the world for centuries. You are an intrepid explorer, known for your unparalleled curiosity and courage, who has stumbled upon an ancient map hinting at ests that Aeloria holds a secret so profound that it has the potential to reshape the very fabric of reality. Your journey will take you through treacherous deserts, enchanted forests, and across perilous mountain ranges. Your Task: Character Background: Develop a detailed background for your character. Describe their motivations for seeking out Aeloria, their skills and weaknesses, and any personal connections to the ancient city or its legends. Are they driven by a quest for knowledge, a search for lost familt clue is hidden.";

/** Whitespace "tokenizer": one id per word of the last message. */
function wordIds(request: RouteRequest): number[] | undefined {
  const messages = (request.body?.json as { messages?: Array<{ content?: string }> } | undefined)?.messages;
  const content = messages?.at(-1)?.content;
  return typeof content === "string" ? content.split(/\s+/).map((w) => w.length) : undefined;
}

interface Recorded {
  request: RouteRequest;
  events: string[];
  outcome?: RequestOutcome;
}

async function settle(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("dev gateway → endpoint picker (TLS) → workers", () => {
  let workers: TestWorker[];
  let epp: ExtProcServer;
  let gateway: DevGateway;
  let openai: OpenAI;
  const recorded: Recorded[] = [];

  beforeAll(async () => {
    workers = [
      await TestWorker.start("w1", "127.0.0.1"),
      await TestWorker.start("w2", "127.0.0.2"),
      await TestWorker.start("slow", "127.0.0.3", { streamDelayMs: 20, streamChunks: 500 }),
    ];
    const endpoints = workers.map((w) => w.endpoint);
    const router = new RoundRobinRouter({
      endpoints: endpoints.slice(0, 2),
      tokenData: wordIds,
      headers: (endpoint) => {
        const id = String(endpoints.indexOf(endpoint) + 1);
        return { "x-worker-instance-id": id, "x-dynamo-worker-instance-id": id, "x-dynamo-routing-mode": "aggregated" };
      },
      lifecycle: (_endpoint, request): RequestLifecycle => {
        const entry: Recorded = { request, events: [] };
        recorded.push(entry);
        return {
          prefillComplete: () => entry.events.push("prefillComplete"),
          outputProgress: (n) => entry.events.push(`output:${n}`),
          end: (outcome) => {
            entry.events.push(`end:${outcome.reason}`);
            entry.outcome = outcome;
          },
        };
      },
    });
    epp = await ExtProcServer.start({ router, host: "127.0.0.1", port: 0 });
    gateway = await DevGateway.start({
      port: 0,
      extProc: { target: `127.0.0.1:${epp.port}`, tls: true },
      endpoints: endpoints.slice(0, 2),
    });
    openai = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: "unused", maxRetries: 0 });
  });

  afterAll(async () => {
    await gateway.close();
    await epp.close();
    for (const w of workers) await w.close();
  });

  it("answers the seed's sample chat request through the picker, with token ids injected and routing headers set", async () => {
    const completion = await openai.chat.completions.create({
      model: "Qwen/Qwen3-0.6B",
      messages: [{ role: "user", content: SEED_PROMPT }],
      stream: false,
      max_tokens: 30,
      temperature: 0.0,
    });
    expect(completion.object).toBe("chat.completion");
    expect(completion.choices[0]!.message.content).toMatch(/^Hello from w[12] \(worker id [12]\)$/);
    const words = SEED_PROMPT.split(/\s+/).length;
    expect(completion.usage).toMatchObject({ prompt_tokens: words, completion_tokens: 8 });
    const worker = workers.find((w) => w.seen.length > 0)!;
    const seen = worker.seen.at(-1)!;
    expect(seen.body).toMatchObject({ model: "Qwen/Qwen3-0.6B", max_tokens: 30, temperature: 0 });
    expect((seen.body!["nvext"] as { token_data: number[] }).token_data).toHaveLength(words);
    expect(seen.headers["x-gateway-destination-endpoint"]).toBe(worker.endpoint);
    expect(seen.headers["x-dynamo-routing-mode"]).toBe("aggregated");
    expect(seen.headers["x-worker-instance-id"]).toBe(seen.headers["x-dynamo-worker-instance-id"]);
    await settle(() => recorded.length === 1 && recorded[0]!.outcome !== undefined, "request end");
    expect(recorded[0]!.events).toEqual(["prefillComplete", "end:complete"]);
    expect(recorded[0]!.outcome!.usage).toMatchObject({ promptTokens: words, completionTokens: 8, cachedTokens: 0 });
  });

  it("streams an SSE answer back chunk by chunk while the picker counts output", async () => {
    const stream = await openai.chat.completions.create({
      model: "Qwen/Qwen3-0.6B",
      messages: [{ role: "user", content: "stream please" }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? "";
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toMatch(/^Hello from w[12] \(worker id [12]\)$/);
    expect(usage).toMatchObject({ prompt_tokens: 2, completion_tokens: 8 });
    const entry = recorded.at(-1)!;
    await settle(() => entry.outcome !== undefined, "stream end");
    expect(entry.events[0]).toBe("prefillComplete");
    // Progress is reported at most once per body chunk, however the network grouped the events.
    const progress = entry.events.filter((e) => e.startsWith("output:"));
    expect(progress.length).toBeGreaterThanOrEqual(1);
    expect(progress.at(-1)).toBe("output:8");
    expect(entry.outcome).toMatchObject({ reason: "complete", generatedTokens: 8, usage: { promptTokens: 2 } });
  });

  it("routes GET /v1/models on its headers alone", async () => {
    const models = await openai.models.list();
    expect(models.data.map((m) => m.id)).toEqual(["Qwen/Qwen3-0.6B"]);
  });

  it("strips client-sent routing headers before the worker sees them", async () => {
    const before = recorded.length;
    await openai.chat.completions.create(
      { model: "Qwen/Qwen3-0.6B", messages: [{ role: "user", content: "spoof" }] },
      {
        headers: {
          "x-worker-instance-id": "999",
          "x-prefiller-host-port": "6.6.6.6:1",
          "x-dynamo-prefill-instance-id": "5",
        },
      },
    );
    const seen = workers.flatMap((w) => w.seen).at(-1)!;
    expect(seen.headers["x-worker-instance-id"]).not.toBe("999");
    expect(seen.headers["x-prefiller-host-port"]).toBeUndefined();
    expect(seen.headers["x-dynamo-prefill-instance-id"]).toBeUndefined();
    expect(recorded.length).toBe(before + 1);
  });

  it("returns the picker's 400 for invalid JSON", async () => {
    const response = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"model": "m", "messages": [',
    });
    expect(response.status).toBe(400);
    expect(await response.text()).toContain("not valid JSON");
  });

  it("frees the request once when the client walks away mid-stream", async () => {
    const slowGateway = await DevGateway.start({
      port: 0,
      extProc: { target: `127.0.0.1:${epp.port}`, tls: true },
      endpoints: [workers[2]!.endpoint],
    });
    const slowRouter: RequestRouter = {
      route: (request) => {
        const entry: Recorded = { request, events: [] };
        recorded.push(entry);
        return {
          type: "route",
          endpoints: [workers[2]!.endpoint],
          lifecycle: {
            prefillComplete: () => entry.events.push("prefillComplete"),
            end: (o) => ((entry.outcome = o), entry.events.push(`end:${o.reason}`)),
          },
        };
      },
    };
    const slowEpp = await ExtProcServer.start({ router: slowRouter, host: "127.0.0.1", port: 0, tls: false });
    const cutGateway = await DevGateway.start({
      port: 0,
      extProc: { target: `127.0.0.1:${slowEpp.port}` },
      endpoints: [workers[2]!.endpoint],
    });
    try {
      const controller = new AbortController();
      const client = new OpenAI({ baseURL: `${cutGateway.url}/v1`, apiKey: "unused", maxRetries: 0 });
      const stream = await client.chat.completions.create(
        { model: "Qwen/Qwen3-0.6B", messages: [{ role: "user", content: "long" }], stream: true },
        { signal: controller.signal },
      );
      let chunks = 0;
      try {
        for await (const _ of stream) {
          if (++chunks === 3) controller.abort();
        }
      } catch {
        // the aborted read may end the iteration with an error or quietly
      }
      expect(chunks).toBeGreaterThanOrEqual(3);
      const entry = recorded.at(-1)!;
      await settle(() => entry.outcome !== undefined, "cancel end");
      await settle(() => workers[2]!.aborted === 1, "worker saw the cut");
      await new Promise((r) => setTimeout(r, 50));
      expect(entry.events).toEqual(["prefillComplete", "end:cancelled"]);
    } finally {
      await cutGateway.close();
      await slowGateway.close();
      await slowEpp.close();
    }
  });
});

describe("subset hint and destinations", () => {
  let workers: TestWorker[];
  afterAll(async () => {
    for (const w of workers) await w.close();
  });
  beforeAll(async () => {
    workers = [await TestWorker.start("a", "127.0.0.4"), await TestWorker.start("b", "127.0.0.5")];
  });

  async function withStack(
    router: RequestRouter,
    endpoints: string[] | undefined,
    run: (gateway: DevGateway, epp: ExtProcServer) => Promise<void>,
  ): Promise<void> {
    const epp = await ExtProcServer.start({ router, host: "127.0.0.1", port: 0, tls: false });
    const gateway = await DevGateway.start({
      port: 0,
      extProc: { target: `127.0.0.1:${epp.port}` },
      ...(endpoints ? { endpoints } : {}),
    });
    try {
      await run(gateway, epp);
    } finally {
      await gateway.close();
      await epp.close();
    }
  }

  const ask = (gateway: DevGateway) =>
    fetch(`${gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }),
    });

  it("sends the pool as the subset hint: the picker only routes inside it", async () => {
    const router = new RoundRobinRouter({ endpoints: workers.map((w) => w.endpoint) });
    await withStack(router, [workers[1]!.endpoint], async (gateway) => {
      for (let i = 0; i < 4; i++) expect((await ask(gateway)).headers.get("x-served-by")).toBe("b");
    });
  });

  it("gets 503 when the subset holds no endpoint the picker knows", async () => {
    const router = new RoundRobinRouter({ endpoints: [workers[0]!.endpoint] });
    await withStack(router, ["127.0.0.9:9"], async (gateway) => {
      const response = await ask(gateway);
      expect(response.status).toBe(503);
      expect(await response.text()).toBe("no endpoints available");
    });
  });

  it("walks a fallback list past an endpoint that refuses connections and reports the served one", async () => {
    const served: Array<string | undefined> = [];
    const router: RequestRouter = {
      route: () => ({
        type: "route",
        endpoints: ["127.0.0.6:1", workers[0]!.endpoint],
        lifecycle: { responseStarted: (info) => served.push(info.servedEndpoint), end: () => undefined },
      }),
    };
    await withStack(router, undefined, async (gateway) => {
      const response = await ask(gateway);
      expect(response.status).toBe(200);
      expect(response.headers.get("x-served-by")).toBe("a");
      expect(served).toEqual([workers[0]!.endpoint]);
    });
  });

  it("never lets a decision outside the pool reach a worker", async () => {
    const router: RequestRouter = { route: () => ({ type: "route", endpoints: [workers[1]!.endpoint] }) };
    const before = workers[1]!.seen.length;
    await withStack(router, [workers[0]!.endpoint], async (gateway) => {
      const response = await ask(gateway);
      expect(response.status).toBe(503);
    });
    expect(workers[1]!.seen.length).toBe(before);
  });
});
