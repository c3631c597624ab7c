import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { loadavg } from "node:os";
import { join } from "node:path";
import { ExtProcClient } from "@dynamo/ext-proc";
import { ZmqEventPublisher, storedBatch } from "@dynamo/kv-events";
import { seededRng } from "@dynamo/primitives";
import { freePort } from "@dynamo/testkit";
import { TokenizerRegistry } from "@dynamo/tokenizer";
import {
  cdfPoints,
  markdownTable,
  numberOption,
  percentile,
  round,
  textOption,
  type Bench,
  type BenchContext,
  type Chart,
} from "../framework.js";

const MODEL = "Qwen/Qwen3-0.6B";
const BLOCK_SIZE = 64;
const WORKERS = 16;
const LONG_WORKERS = 96;
const FAMILIES = 32;
const PREFIX_CHARS = 6_000;
const REQUEST_CHARS = 10_000;

/** A deterministic word list: syllables, so the tokenizer meets words it must split. */
function vocabulary(size: number, seed: number): string[] {
  const rng = seededRng(seed);
  const syllables = ["ka", "lo", "mi", "ren", "sto", "va", "qui", "dor", "the", "an", "ing", "el", "or", "tra", "po"];
  return Array.from({ length: size }, () => {
    const n = 1 + Math.floor(rng() * 4);
    let word = "";
    for (let i = 0; i < n; i++) word += syllables[Math.floor(rng() * syllables.length)]!;
    return rng() < 0.1 ? word[0]!.toUpperCase() + word.slice(1) : word;
  });
}

function text(rng: () => number, words: string[], chars: number): string {
  let out = "";
  while (out.length < chars) {
    out += words[Math.floor(rng() * words.length)]!;
    out += rng() < 0.08 ? ". " : rng() < 0.05 ? `, ${Math.floor(rng() * 1000)} ` : " ";
  }
  return out.slice(0, chars);
}

/** Chat requests of `chars` characters: a family's shared prefix (a system prompt) and text never seen before. */
class Prompts {
  private readonly rng = seededRng(11);
  private readonly words = vocabulary(8_000, 5);
  readonly prefixes: string[];
  private next = 0;

  constructor(
    families: number,
    private readonly prefixChars: number,
    private readonly chars: number,
  ) {
    this.prefixes = Array.from({ length: families }, () => text(this.rng, this.words, prefixChars));
  }

  body(family: number): string {
    const unique = text(this.rng, this.words, this.chars - this.prefixChars);
    return JSON.stringify({
      model: MODEL,
      messages: [
        { role: "system", content: this.prefixes[family]! },
        { role: "user", content: `Request ${this.next++}: ${unique}` },
      ],
      max_tokens: 64,
    });
  }
}

interface EppProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly metricsPort: number;
  /** Decision-log lines by request id. */
  readonly decisions: Map<string, { tokenizeMs: number; decisionMs: number; overlapBlocks: number }>;
  stop(): Promise<void>;
}

/** The endpoint picker as its own process over static discovery, KV events from the workers' ZeroMQ publishers. */
async function startEpp(root: string, workers: object[], tls: boolean, cpuProfileDir?: string): Promise<EppProcess> {
  const [port, healthPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  const tsx = createRequire(join(root, "package.json")).resolve("tsx");
  const child = spawn(
    process.execPath,
    [
      ...(cpuProfileDir !== undefined ? ["--cpu-prof", `--cpu-prof-dir=${cpuProfileDir}`] : []),
      "--import",
      tsx,
      "--conditions=@dynamo/source",
      join(root, "apps/epp/src/main.ts"),
    ],
    {
      cwd: root,
      env: {
        ...process.env,
        DYN_DISCOVERY_BACKEND: "static",
        DYN_DISCOVERY_WORKERS: JSON.stringify({ defaults: { model: MODEL }, workers }),
        DYN_EVENT_PLANE: "zmq",
        DYN_KV_CACHE_BLOCK_SIZE: String(BLOCK_SIZE),
        DYN_MODEL_NAME: MODEL,
        DYN_SECURE_SERVING: String(tls),
        DYN_EPP_EXT_PROC_PORT: String(port),
        DYN_EPP_HEALTH_PORT: String(healthPort),
        DYN_EPP_METRICS_PORT: String(metricsPort),
        DYN_EPP_MAX_INFLIGHT_REQUESTS: "4096",
        DYN_EPP_GRACEFUL_SHUTDOWN_PROPAGATION_SECS: "0",
        // Event-loop delay sampled every millisecond, as in the figures measured before it became a setting.
        DYN_EPP_EVENT_LOOP_RESOLUTION_MS: "1",
      },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const decisions: EppProcess["decisions"] = new Map();
  let listening: () => void;
  const ready = new Promise<void>((resolve) => (listening = resolve));
  let partial = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split("\n");
    partial = lines.pop()!;
    for (const line of lines) {
      if (!line.startsWith("{")) continue;
      const record = JSON.parse(line) as Record<string, unknown>;
      if (record["msg"] === "endpoint picker listening") listening();
      else if (record["msg"] === "request")
        decisions.set(record["requestId"] as string, {
          tokenizeMs: record["tokenizeMs"] as number,
          decisionMs: record["decisionMs"] as number,
          overlapBlocks: record["overlapBlocks"] as number,
        });
    }
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await Promise.race([ready, exited.then(() => Promise.reject(new Error("the endpoint picker exited at start")))]);
  return {
    child,
    port,
    metricsPort,
    decisions,
    async stop() {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

async function scrape(port: number): Promise<Map<string, number>> {
  const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of body.split("\n")) {
    if (line.startsWith("#") || line === "") continue;
    const at = line.lastIndexOf(" ");
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

interface Sample {
  readonly id: string;
  /** Client-observed: request sent to its answer (headers and body mutations) received. */
  readonly clientMs: number;
}

/** One request through the ext_proc stream as Envoy runs it: request phases, then a short response. */
async function exchange(client: ExtProcClient, id: string, body: string): Promise<Sample> {
  const stream = client.open();
  const started = performance.now();
  const result = await stream.processRequest({
    headers: [
      [":method", "POST"],
      [":path", "/v1/chat/completions"],
      [":authority", "bench"],
      ["content-type", "application/json"],
      ["x-request-id", id],
    ],
    body: Buffer.from(body),
  });
  const clientMs = performance.now() - started;
  if (result.type !== "continue") {
    stream.close();
    throw new Error(
      `request ${id}: ${result.type === "immediate" ? `${result.status} ${result.body}` : result.message}`,
    );
  }
  await stream.processResponseHeaders({ status: 200, headers: [["content-type", "application/json"]] });
  for await (const chunk of stream.processResponseBody([
    Buffer.from('{"choices":[{"message":{"content":"ok"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}'),
  ]))
    void chunk;
  stream.close();
  return { id, clientMs };
}

interface Split {
  readonly n: number;
  readonly clientP50: number;
  readonly clientP99: number;
  readonly tokenizeP50: number;
  readonly tokenizeP99: number;
  readonly noTokenizeP50: number;
  readonly noTokenizeP99: number;
  readonly inEppNoTokenizeP99: number;
  readonly cdf: Array<[number, number]>;
}

function split(samples: Sample[], decisions: EppProcess["decisions"]): Split {
  const rows = samples.flatMap((s) => {
    const d = decisions.get(s.id);
    return d === undefined ? [] : [{ ...s, ...d }];
  });
  const sorted = (values: number[]) => Float64Array.from(values).sort();
  const client = sorted(rows.map((r) => r.clientMs));
  const tokenize = sorted(rows.map((r) => r.tokenizeMs));
  const rest = sorted(rows.map((r) => Math.max(0, r.clientMs - r.tokenizeMs)));
  const inEpp = sorted(rows.map((r) => Math.max(0, r.decisionMs - r.tokenizeMs)));
  return {
    n: rows.length,
    clientP50: round(percentile(client, 50), 3),
    clientP99: round(percentile(client, 99), 3),
    tokenizeP50: round(percentile(tokenize, 50), 3),
    tokenizeP99: round(percentile(tokenize, 99), 3),
    noTokenizeP50: round(percentile(rest, 50), 3),
    noTokenizeP99: round(percentile(rest, 99), 3),
    inEppNoTokenizeP99: round(percentile(inEpp, 99), 3),
    cdf: cdfPoints(client),
  };
}

/** Closed loop at `concurrency` for `seconds`: completed requests per second. */
async function saturate(
  ctx: BenchContext,
  client: ExtProcClient,
  prompts: Prompts,
  concurrency: number,
  seconds: number,
): Promise<{ perSec: number; samples: Sample[] }> {
  const deadline = performance.now() + seconds * 1000;
  const samples: Sample[] = [];
  let n = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const i = n++;
        samples.push(await exchange(client, `sat-${i}`, prompts.body(i % FAMILIES)));
        ctx.progress.update("saturated", Math.round(performance.now() - started), seconds * 1000);
      }
    }),
  );
  return { perSec: samples.length / ((performance.now() - started) / 1000), samples };
}

/** Open loop: arrivals every 1/rate seconds for `seconds`, whatever the answers take. */
async function openLoop(
  ctx: BenchContext,
  client: ExtProcClient,
  prompts: Prompts,
  rate: number,
  seconds: number,
  tag: string,
): Promise<Sample[]> {
  const total = Math.round(rate * seconds);
  const started = performance.now();
  const pending: Array<Promise<Sample>> = [];
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    pending.push(exchange(client, `${tag}-${i}`, prompts.body(i % FAMILIES)));
    ctx.progress.update(tag, i + 1, total);
  }
  return Promise.all(pending);
}

async function publishers(count: number): Promise<{ workers: object[]; pubs: ZmqEventPublisher[] }> {
  const workers: object[] = [];
  const pubs: ZmqEventPublisher[] = [];
  for (let i = 0; i < count; i++) {
    const endpoint = `tcp://127.0.0.1:${await freePort()}`;
    pubs.push(await ZmqEventPublisher.open({ endpoint, bind: true }));
    workers.push({
      name: `worker-${i}`,
      http: `127.0.${1 + Math.floor(i / 250)}.${1 + (i % 250)}:8000`,
      kvEvents: { endpoint },
    });
  }
  return { workers, pubs };
}

/** Publishes each family's prompt blocks from one worker, until the picker's routes see them. */
async function warmKvState(
  ctx: BenchContext,
  tokenizers: TokenizerRegistry,
  prompts: Prompts,
  pubs: ZmqEventPublisher[],
  client: ExtProcClient,
  epp: EppProcess,
): Promise<void> {
  const tk = await tokenizers.get(MODEL);
  const families = prompts.prefixes.length;
  const tokens: Uint32Array[] = [];
  for (let f = 0; f < families; f++) tokens.push((await tk.tokenizeRequest("chat", prompts.body(f))).tokenIds);
  for (let attempt = 0; attempt < 50; attempt++) {
    for (let f = 0; f < families; f++)
      await pubs[f % pubs.length]!.publish(storedBatch(tokens[f]!, BLOCK_SIZE, BigInt(f + 1) << 32n));
    const probe = await exchange(client, `warm-${attempt}`, prompts.body(0));
    await new Promise((r) => setTimeout(r, 100));
    if ((epp.decisions.get(probe.id)?.overlapBlocks ?? 0) > 0) return;
    ctx.progress.note("waiting for the picker to receive the KV events");
  }
  throw new Error("the endpoint picker never saw the workers' KV events");
}

export const bench: Bench = {
  name: "epp",
  description:
    "The endpoint picker as a process (`apps/epp`), driven over loopback by the project's ext_proc client (Envoy's full-duplex mode, streams closed gracefully): 10,000-character chat requests (a 6,000-character prefix shared by a family of requests, the rest never seen before) over 16 workers whose KV state arrives as vLLM events over ZeroMQ; then 240k-token prompts over 96 workers. Options: `--seconds 8 --concurrency 64 --tls on|off --long-requests 12 --cpu-prof <dir>` (V8 CPU profiles of the picker's threads, written when it stops).",
  async run(ctx) {
    const seconds = numberOption(ctx.args, "seconds", 8);
    const concurrency = numberOption(ctx.args, "concurrency", 64);
    const longRequests = numberOption(ctx.args, "long-requests", 12);
    const tls = textOption(ctx.args, "tls", "on") !== "off";
    const cpuProfileDir = textOption(ctx.args, "cpu-prof", "") || undefined;
    const loadBefore = loadavg()[0]!;
    const tokenizers = new TokenizerRegistry({ threads: 1 });
    const prompts = new Prompts(FAMILIES, PREFIX_CHARS, REQUEST_CHARS);
    const charts: Chart[] = [];

    // 16 workers, 10k-character requests.
    const fleet = await publishers(WORKERS);
    const epp = await startEpp(ctx.root, fleet.workers, tls, cpuProfileDir);
    const client = new ExtProcClient({ target: `127.0.0.1:${epp.port}`, tls, closeMode: "graceful" });
    let saturated: { perSec: number; samples: Sample[] };
    let half: Split;
    let loop: { p50: number; p99: number; max: number };
    let rssMb: number;
    try {
      await warmKvState(ctx, tokenizers, prompts, fleet.pubs, client, epp);
      await saturate(ctx, client, prompts, concurrency, 2); // warm-up: JIT, tokenizer caches
      saturated = await saturate(ctx, client, prompts, concurrency, seconds);
      ctx.progress.note(`saturated: ${round(saturated.perSec, 0)} decisions/s`);
      await scrape(epp.metricsPort); // resets the event-loop delay window
      const samples = await openLoop(ctx, client, prompts, saturated.perSec / 2, seconds, "half load");
      await new Promise((r) => setTimeout(r, 300));
      const metrics = await scrape(epp.metricsPort);
      half = split(samples, epp.decisions);
      loop = {
        p50: round((metrics.get("nodejs_eventloop_lag_p50_seconds") ?? NaN) * 1000, 3),
        p99: round((metrics.get("nodejs_eventloop_lag_p99_seconds") ?? NaN) * 1000, 3),
        max: round((metrics.get("nodejs_eventloop_lag_max_seconds") ?? NaN) * 1000, 3),
      };
      rssMb = round((metrics.get("process_resident_memory_bytes") ?? NaN) / 2 ** 20, 1);
    } finally {
      client.close();
      await epp.stop();
      for (const pub of fleet.pubs) await pub.close();
    }
    const sat = split(saturated.samples, epp.decisions);

    // 240k-token prompts over 96 workers.
    const longFleet = await publishers(LONG_WORKERS);
    const longEpp = await startEpp(ctx.root, longFleet.workers, tls);
    const longClient = new ExtProcClient({ target: `127.0.0.1:${longEpp.port}`, tls, closeMode: "graceful" });
    // ≈ 240k Qwen3 tokens: this text runs at about 0.37 tokens per character.
    const longPrompts = new Prompts(4, 400_000, 654_000);
    let long: Split;
    let longTokens = 0;
    try {
      await warmKvState(ctx, tokenizers, longPrompts, longFleet.pubs, longClient, longEpp);
      const samples: Sample[] = [];
      for (let i = 0; i < longRequests + 2; i++) {
        const sample = await exchange(longClient, `long-${i}`, longPrompts.body(i % 4));
        if (i >= 2) samples.push(sample); // the first two warm the JIT
        ctx.progress.update("240k-token prompts", i + 1, longRequests + 2);
      }
      long = split(samples, longEpp.decisions);
      const tk = await tokenizers.get(MODEL);
      longTokens = (await tk.tokenizeRequest("chat", longPrompts.body(0))).tokenIds.length;
    } finally {
      longClient.close();
      await longEpp.stop();
      for (const pub of longFleet.pubs) await pub.close();
      await tokenizers.close();
    }

    const load = `${round(loadBefore, 2)} at the start, ${round(loadavg()[0]!, 2)} at the end`;
    const decisionsPerSec = round(saturated.perSec, 0);
    const met = (ok: boolean) => (ok ? "met" : "not met");
    const targets = {
      decisionsPerSec: met(decisionsPerSec >= 2500),
      p99NoTokenizeMs: met(half.noTokenizeP99 < 1),
      p99Ms: met(half.clientP99 < 5),
      longP99NoTokenizeMs: met(long.noTokenizeP99 < 10),
      longP99Ms: met(long.clientP99 < 100),
    };
    charts.push({
      kind: "line",
      title: "Decision latency at half load (client-observed)",
      xLabel: "ms",
      yLabel: "fraction of requests",
      series: [{ name: "10k-character chat, 16 workers", points: half.cdf }],
    });
    const row = (name: string, s: Split) => [
      name,
      s.n,
      s.clientP50,
      s.clientP99,
      s.tokenizeP50,
      s.tokenizeP99,
      s.noTokenizeP50,
      s.noTokenizeP99,
      s.inEppNoTokenizeP99,
    ];
    const markdown = [
      `Saturated: **${decisionsPerSec.toLocaleString("en-US")} decisions/s** (${concurrency} concurrent streams, ${seconds} s, ${tls ? "TLS" : "h2c"}). Half that rate, open loop: event-loop delay of the picker p50 / p99 / max ${loop.p50} / ${loop.p99} / ${loop.max} ms, RSS ${rssMb} MiB.`,
      "",
      markdownTable(
        [
          "case",
          "requests",
          "p50 ms",
          "p99 ms",
          "tokenize p50",
          "tokenize p99",
          "without tokenization p50",
          "without tokenization p99",
          "in-picker without tokenization p99",
        ],
        [
          row("10k chars, 16 workers, half load", half),
          row("10k chars, saturated", sat),
          row(`${longTokens.toLocaleString("en-US")} tokens, 96 workers`, long),
        ],
      ),
      "",
      markdownTable(
        ["target", "figure", "verdict"],
        [
          ["≥ 2,500 decisions/s", decisionsPerSec, targets.decisionsPerSec],
          ["p99 without tokenization < 1 ms (half load)", half.noTokenizeP99, targets.p99NoTokenizeMs],
          ["p99 < 5 ms (half load)", half.clientP99, targets.p99Ms],
          ["240k × 96: p99 without tokenization < 10 ms", long.noTokenizeP99, targets.longP99NoTokenizeMs],
          ["240k × 96: p99 < 100 ms", long.clientP99, targets.longP99Ms],
        ],
      ),
      "",
      "- **p50 / p99**: client-observed, from sending the request (headers and body, Envoy's full-duplex mode) to receiving the picker's whole answer (header mutations, the rewritten body with `nvext.token_data`); each exchange then runs a short response through the picker, which frees the booking.",
      "- **tokenize**: the picker's own figure from its decision log (`tokenizeMs`: the chat template and BPE on the tokenizer pool, queueing included). **Without tokenization**: client-observed minus that. **In-picker without tokenization**: the picker's decision time (body end to decision) minus tokenization: hashing, index lookup, scoring, booking.",
      `- Client, picker (a separate Node process run from the TypeScript sources, one tokenizer thread) and the 16 / 96 ZeroMQ publishers share the 2-core machine with other work: 1-minute load average ${load} (2 cores), so every figure here is a fraction of what the picker gets on a machine of its own.`,
    ].join("\n");
    return {
      figures: {
        decisionsPerSec,
        p50Ms: half.clientP50,
        p99Ms: half.clientP99,
        p99NoTokenizeMs: half.noTokenizeP99,
        tokenizeP50Ms: half.tokenizeP50,
        tokenizeP99Ms: half.tokenizeP99,
        inEppP99NoTokenizeMs: half.inEppNoTokenizeP99,
        eventLoopDelayMs: { p50: loop.p50, p99: loop.p99, max: loop.max },
        rssMb,
        loadAverage: round(loadavg()[0]!, 2),
        longPromptTokens: longTokens,
        longP99Ms: long.clientP99,
        longP99NoTokenizeMs: long.noTokenizeP99,
        longTokenizeP99Ms: long.tokenizeP99,
        targets,
      },
      markdown,
      charts,
    };
  },
};
