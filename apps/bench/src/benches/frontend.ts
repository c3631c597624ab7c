import { spawn, type ChildProcess } from "node:child_process";
import { Agent, createServer, request, type IncomingMessage, type Server } from "node:http";
import { createRequire } from "node:module";
import { loadavg } from "node:os";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { closeServer, listen, portOf } from "@dynamo/http-server";
import { freePort } from "@dynamo/testkit";
import {
  markdownTable,
  numberOption,
  percentile,
  round,
  type Bench,
  type BenchContext,
  type Chart,
} from "../framework.js";

const MODEL = "Qwen/Qwen3-0.6B";
const WORKER_ID = "7";
const PROMPT_IDS = Array.from({ length: 256 }, (_, i) => 1000 + i);
const EPP_HEADERS = {
  "content-type": "application/json",
  "x-dynamo-worker-instance-id": WORKER_ID,
  "x-worker-instance-id": WORKER_ID,
  "x-dynamo-dp-rank": "0",
  "x-dynamo-routing-mode": "aggregated",
};

/** A child process started with tsx on the workspace sources; resolves once `ready` appears in its output. */
async function startProcess(root: string, script: string, args: string[], ready: string): Promise<ChildProcess> {
  const tsx = createRequire(join(root, "package.json")).resolve("tsx");
  const child = spawn(process.execPath, ["--import", tsx, "--conditions=@dynamo/source", join(root, script), ...args], {
    cwd: root,
    env: { ...process.env, POD_NAME: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const onData = (chunk: Buffer) => (out += chunk.toString());
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  const deadline = Date.now() + 120_000;
  while (!out.includes(ready)) {
    if (child.exitCode !== null) throw new Error(`${script} exited at start: ${out}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`${script} did not start: ${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  child.stdout!.off("data", onData);
  child.stdout!.resume();
  child.stderr!.pipe(process.stderr);
  return child;
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}

/**
 * An engine that costs nothing and stamps every SSE chunk with the monotonic clock at the moment it
 * writes it (`text` = nanoseconds), `chunks` chunks `intervalMs` apart, so a client on the same machine
 * measures each chunk's one-way latency.
 */
async function stampingEngine(chunks: number, intervalMs: number): Promise<Server> {
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      let sent = 0;
      const send = () => {
        if (res.destroyed) return;
        const text = process.hrtime.bigint().toString();
        const finish = sent === chunks - 1 ? '"length"' : "null";
        res.write(
          `data: {"id":"cmpl-b","object":"text_completion","created":1,"model":"${MODEL}","choices":[{"index":0,"text":"${text}","logprobs":null,"finish_reason":${finish}}]}\n\n`,
        );
        if (++sent < chunks) setTimeout(send, intervalMs);
        else res.end("data: [DONE]\n\n");
      };
      send();
    });
  });
  await listen(server, 0, "127.0.0.1");
  return server;
}

interface StreamSample {
  readonly ttfbMs: number;
  /** Per chunk: receive time minus the engine's stamp, in µs (stamping engine only). */
  readonly chunkLatencyUs: number[];
}

const agent = new Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 256 });

/** One streamed request with Node's http client: time to the first body byte, and each stamped chunk's latency. */
function streamOnce(url: URL, body: string, stamped: boolean): Promise<StreamSample> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const outgoing = request(
      url,
      { method: "POST", headers: { ...EPP_HEADERS, "content-length": Buffer.byteLength(body) }, agent },
      (res: IncomingMessage) => {
        let ttfbMs = -1;
        const latencies: number[] = [];
        let pending = "";
        res.on("data", (chunk: Buffer) => {
          const now = process.hrtime.bigint();
          if (ttfbMs < 0) ttfbMs = performance.now() - started;
          if (!stamped) return;
          pending += chunk.toString();
          let at: number;
          while ((at = pending.indexOf("\n\n")) >= 0) {
            const event = pending.slice(0, at);
            pending = pending.slice(at + 2);
            const match = /"(?:text|content)":"(\d+)"/.exec(event);
            if (match !== null) latencies.push(Number(now - BigInt(match[1]!)) / 1000);
          }
        });
        res.on("end", () =>
          res.statusCode === 200
            ? resolve({ ttfbMs, chunkLatencyUs: latencies })
            : reject(new Error(`status ${res.statusCode}`)),
        );
        res.on("error", reject);
      },
    );
    outgoing.on("error", reject);
    outgoing.end(body);
  });
}

/** The same with `fetch` (the alternative engine client the sidecar could use). */
async function streamOnceFetch(url: URL, body: string): Promise<StreamSample> {
  const started = performance.now();
  const response = await fetch(url, { method: "POST", headers: EPP_HEADERS, body });
  const reader = response.body!.getReader();
  let ttfbMs = -1;
  const latencies: number[] = [];
  let pending = "";
  const decoder = new TextDecoder();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const now = process.hrtime.bigint();
    if (ttfbMs < 0) ttfbMs = performance.now() - started;
    pending += decoder.decode(value, { stream: true });
    let at: number;
    while ((at = pending.indexOf("\n\n")) >= 0) {
      const match = /"(?:text|content)":"(\d+)"/.exec(pending.slice(0, at));
      pending = pending.slice(at + 2);
      if (match !== null) latencies.push(Number(now - BigInt(match[1]!)) / 1000);
    }
  }
  return { ttfbMs, chunkLatencyUs: latencies };
}

/** `total` requests, `concurrency` at a time. */
async function batch(total: number, concurrency: number, one: () => Promise<StreamSample>): Promise<StreamSample[]> {
  const out: StreamSample[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        next++;
        out.push(await one());
      }
    }),
  );
  return out;
}

interface Variant {
  readonly label: string;
  readonly run: () => Promise<StreamSample>;
  /** A process whose CPU time this variant's batches are charged with (the frontend it goes through). */
  readonly pid?: number;
}

/** CPU time (user + system) a process has used, in ms, from /proc (clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Samples of one variant and the CPU its frontend process spent on them. */
interface Pooled {
  readonly samples: StreamSample[];
  cpuMs: number;
}

/** Variants interleaved over `rounds` (each gets the machine's noise alike); samples pooled per variant. */
async function interleaved(
  ctx: BenchContext,
  phase: string,
  variants: readonly Variant[],
  rounds: number,
  perRound: number,
  concurrency: number,
): Promise<Pooled[]> {
  const pooled: Pooled[] = variants.map(() => ({ samples: [], cpuMs: 0 }));
  for (let r = 0; r < rounds; r++) {
    for (let v = 0; v < variants.length; v++) {
      const variant = variants[v]!;
      const before = variant.pid === undefined ? 0 : cpuMs(variant.pid);
      pooled[v]!.samples.push(...(await batch(perRound, concurrency, variant.run)));
      if (variant.pid !== undefined) pooled[v]!.cpuMs += cpuMs(variant.pid) - before;
    }
    ctx.progress.update(phase, r + 1, rounds);
  }
  return pooled;
}

function sorted(values: Iterable<number>): Float64Array {
  return Float64Array.from(values).sort();
}

function stats({ samples, cpuMs: cpu }: Pooled) {
  const ttfb = sorted(samples.map((s) => s.ttfbMs));
  const chunks = sorted(samples.flatMap((s) => s.chunkLatencyUs));
  return {
    ttfbP50Ms: percentile(ttfb, 50),
    ttfbP99Ms: percentile(ttfb, 99),
    chunkP50Us: percentile(chunks, 50),
    chunkP99Us: percentile(chunks, 99),
    chunks: chunks.length,
    requests: samples.length,
    cpuMs: cpu,
  };
}

export const bench: Bench = {
  name: "frontend",
  description:
    "The frontend sidecar's added latency: the same streamed requests sent to an engine directly and through the sidecar (its own process, " +
    "started on the sources), interleaved over rounds. Time to first byte against the mocker at speedup 0 (the engine costs nothing); " +
    "per-chunk latency against an engine stamping each SSE chunk with the monotonic clock (chunks 10 ms apart), both through the raw pass-through " +
    "(a completion request) and the chat-shape rewrite (a chat request with the picker's tokens, sent as a completion and mapped back). " +
    "Options: `--requests 400 --rounds 4 --chunks 32`.",
  async run(ctx) {
    const requests = numberOption(ctx.args, "requests", 400);
    const rounds = numberOption(ctx.args, "rounds", 4);
    const chunkCount = numberOption(ctx.args, "chunks", 32);
    const loadBefore = loadavg()[0]!;
    const children: ChildProcess[] = [];
    let stamp: Server | undefined;
    const cleanup = async () => {
      await Promise.all(children.map((child) => stop(child)));
      if (stamp !== undefined) await closeServer(stamp, { force: true });
      agent.destroy();
    };
    const onSignal = () => void cleanup().then(() => process.exit(130));
    process.once("SIGINT", onSignal);
    try {
      const mockerPort = await freePort();
      ctx.progress.note("starting the mocker (speedup 0) and two frontends");
      children.push(
        await startProcess(
          ctx.root,
          "apps/mocker/src/main.ts",
          ["--port", String(mockerPort), "--host", "127.0.0.1", "--speedup-ratio", "0", "--max-num-seqs", "512"],
          "serving http://",
        ),
      );
      stamp = await stampingEngine(chunkCount, 10);
      const stampPort = portOf(stamp);
      const frontendFor = async (enginePort: number) => {
        const port = await freePort();
        const child = await startProcess(
          ctx.root,
          "apps/frontend/src/main.ts",
          [
            "--port",
            String(port),
            "--host",
            "127.0.0.1",
            `--engine-url=http://127.0.0.1:${enginePort}`,
            "--worker-id",
            WORKER_ID,
            "--tokenizer",
            "none",
            "--log-level",
            "info",
          ],
          "frontend listening",
        );
        children.push(child);
        return { port, pid: child.pid! };
      };
      const mockerSide = await frontendFor(mockerPort);
      const stampSide = await frontendFor(stampPort);
      const [mockerFrontend, stampFrontend] = [mockerSide.port, stampSide.port];

      const chat = JSON.stringify({
        model: MODEL,
        messages: [{ role: "user", content: "hello" }],
        max_tokens: 16,
        stream: true,
        nvext: { token_data: PROMPT_IDS },
      });
      const completion = JSON.stringify({ model: MODEL, prompt: PROMPT_IDS, max_tokens: 16, stream: true });
      const url = (port: number, path: string) => new URL(`http://127.0.0.1:${port}${path}`);

      // Cold: the first request through a frontend that has not served one (its engine connection is new).
      const coldDirect = await streamOnce(url(mockerPort, "/v1/chat/completions"), chat, false);
      const coldFrontend = await streamOnce(url(mockerFrontend, "/v1/chat/completions"), chat, false);

      const ttftVariants = (concurrency: number): Variant[] => [
        {
          label: `direct, ${concurrency}`,
          run: () => streamOnce(url(mockerPort, "/v1/chat/completions"), chat, false),
        },
        {
          label: `frontend, ${concurrency}`,
          run: () => streamOnce(url(mockerFrontend, "/v1/chat/completions"), chat, false),
          pid: mockerSide.pid,
        },
      ];
      const chunkVariants: Variant[] = [
        { label: "direct", run: () => streamOnce(url(stampPort, "/v1/completions"), completion, true) },
        {
          label: "pass-through",
          run: () => streamOnce(url(stampFrontend, "/v1/completions"), completion, true),
          pid: stampSide.pid,
        },
        {
          label: "chat rewrite",
          run: () => streamOnce(url(stampFrontend, "/v1/chat/completions"), chat, true),
          pid: stampSide.pid,
        },
      ];

      const ttft: Record<string, ReturnType<typeof stats>[]> = {};
      const chunk: Record<string, ReturnType<typeof stats>[]> = {};
      for (const concurrency of [1, 64]) {
        const perRound = Math.max(concurrency, Math.round(requests / rounds));
        ttft[concurrency] = (
          await interleaved(ctx, `TTFB at ${concurrency}`, ttftVariants(concurrency), rounds, perRound, concurrency)
        ).map(stats);
        const streams = concurrency === 1 ? 8 : concurrency * 2;
        chunk[concurrency] = (
          await interleaved(ctx, `chunks at ${concurrency}`, chunkVariants, rounds, streams, concurrency)
        ).map(stats);
      }

      // The engine client: Node's http.request with a keep-alive agent against fetch, straight to the stamping engine.
      const clientRuns = await interleaved(
        ctx,
        "http.request vs fetch",
        [
          { label: "http.request", run: () => streamOnce(url(stampPort, "/v1/completions"), completion, true) },
          { label: "fetch", run: () => streamOnceFetch(url(stampPort, "/v1/completions"), completion) },
        ],
        rounds,
        8,
        8,
      );
      const [httpClient, fetchClient] = clientRuns.map(stats);
      const loadAfter = loadavg()[0]!;

      const added = (c: number) => ({
        directP50Ms: round(ttft[c]![0]!.ttfbP50Ms, 3),
        directP99Ms: round(ttft[c]![0]!.ttfbP99Ms, 3),
        frontendP50Ms: round(ttft[c]![1]!.ttfbP50Ms, 3),
        frontendP99Ms: round(ttft[c]![1]!.ttfbP99Ms, 3),
        addedP50Ms: round(ttft[c]![1]!.ttfbP50Ms - ttft[c]![0]!.ttfbP50Ms, 3),
        addedP99Ms: round(ttft[c]![1]!.ttfbP99Ms - ttft[c]![0]!.ttfbP99Ms, 3),
        frontendCpuUsPerRequest: round((ttft[c]![1]!.cpuMs * 1000) / ttft[c]![1]!.requests, 1),
      });
      const chunkFigures = (c: number) => {
        const [direct, pass, rewrite] = chunk[c]!;
        return {
          chunks: direct!.chunks + pass!.chunks + rewrite!.chunks,
          directP50Us: round(direct!.chunkP50Us, 1),
          directP99Us: round(direct!.chunkP99Us, 1),
          passThroughOverheadP50Us: round(pass!.chunkP50Us - direct!.chunkP50Us, 1),
          passThroughOverheadP99Us: round(pass!.chunkP99Us - direct!.chunkP99Us, 1),
          chatRewriteOverheadP50Us: round(rewrite!.chunkP50Us - direct!.chunkP50Us, 1),
          chatRewriteOverheadP99Us: round(rewrite!.chunkP99Us - direct!.chunkP99Us, 1),
          // CPU the frontend process spent per relayed chunk (request handling included): independent of the machine's load.
          passThroughCpuUsPerChunk: round((pass!.cpuMs * 1000) / pass!.chunks, 1),
          chatRewriteCpuUsPerChunk: round((rewrite!.cpuMs * 1000) / rewrite!.chunks, 1),
        };
      };
      const ttft1 = added(1);
      const ttft64 = added(64);
      const chunks1 = chunkFigures(1);
      const chunks64 = chunkFigures(64);
      const addedTtftP99Ms = ttft64.addedP99Ms;
      const chunkOverheadP99Us = Math.max(chunks64.passThroughOverheadP99Us, chunks64.chatRewriteOverheadP99Us);
      const figures = {
        addedTtftP99Ms,
        chunkOverheadP99Us,
        targetAddedTtftP99Ms: 1,
        targetChunkOverheadP99Us: 100,
        targetMet: addedTtftP99Ms < 1 && chunkOverheadP99Us < 100,
        ttft: { "1": ttft1, "64": ttft64 },
        chunks: { "1": chunks1, "64": chunks64 },
        cold: {
          directTtfbMs: round(coldDirect.ttfbMs, 3),
          frontendTtfbMs: round(coldFrontend.ttfbMs, 3),
          addedMs: round(coldFrontend.ttfbMs - coldDirect.ttfbMs, 3),
        },
        engineClient: {
          httpRequestTtfbP50Ms: round(httpClient!.ttfbP50Ms, 3),
          fetchTtfbP50Ms: round(fetchClient!.ttfbP50Ms, 3),
          httpRequestChunkP99Us: round(httpClient!.chunkP99Us, 1),
          fetchChunkP99Us: round(fetchClient!.chunkP99Us, 1),
        },
        requestsPerVariant: {
          "1": rounds * Math.max(1, Math.round(requests / rounds)),
          "64": rounds * Math.max(64, Math.round(requests / rounds)),
        },
        loadAverage1mBefore: round(loadBefore, 2),
        loadAverage1mAfter: round(loadAfter, 2),
      };
      const charts: Chart[] = [
        {
          kind: "bar",
          title: "Time to first byte p99 (ms), mocker at speedup 0",
          unit: "ms",
          bars: [
            { label: "direct, 1 stream", value: ttft1.directP99Ms },
            { label: "frontend, 1 stream", value: ttft1.frontendP99Ms },
            { label: "direct, 64 streams", value: ttft64.directP99Ms },
            { label: "frontend, 64 streams", value: ttft64.frontendP99Ms },
          ],
        },
        {
          kind: "bar",
          title: "Added per-chunk latency p99 (µs)",
          unit: "µs",
          bars: [
            { label: "pass-through, 1", value: chunks1.passThroughOverheadP99Us },
            { label: "chat rewrite, 1", value: chunks1.chatRewriteOverheadP99Us },
            { label: "pass-through, 64", value: chunks64.passThroughOverheadP99Us },
            { label: "chat rewrite, 64", value: chunks64.chatRewriteOverheadP99Us },
          ],
        },
      ];
      const markdown = [
        markdownTable(
          ["streams", "direct TTFB p50 / p99 (ms)", "via frontend p50 / p99 (ms)", "added p50 / p99 (ms)"],
          [1, 64].map((c) => {
            const t = c === 1 ? ttft1 : ttft64;
            return [
              c,
              `${t.directP50Ms} / ${t.directP99Ms}`,
              `${t.frontendP50Ms} / ${t.frontendP99Ms}`,
              `${t.addedP50Ms} / ${t.addedP99Ms}`,
            ];
          }),
        ),
        "",
        markdownTable(
          [
            "streams",
            "direct chunk latency p50 / p99 (µs)",
            "added, pass-through p50 / p99 (µs)",
            "added, chat rewrite p50 / p99 (µs)",
          ],
          [1, 64].map((c) => {
            const k = c === 1 ? chunks1 : chunks64;
            return [
              c,
              `${k.directP50Us} / ${k.directP99Us}`,
              `${k.passThroughOverheadP50Us} / ${k.passThroughOverheadP99Us}`,
              `${k.chatRewriteOverheadP50Us} / ${k.chatRewriteOverheadP99Us}`,
            ];
          }),
        ),
        "",
        `Targets at 64 streams: added TTFT p99 < 1 ms (measured ${addedTtftP99Ms} ms), per-chunk overhead p99 < 100 µs (measured ${chunkOverheadP99Us} µs). ` +
          `Cold (first request, new engine connection): ${figures.cold.addedMs} ms added. Engine client, straight to the engine: http.request ` +
          `TTFB p50 ${figures.engineClient.httpRequestTtfbP50Ms} ms, chunk p99 ${figures.engineClient.httpRequestChunkP99Us} µs; fetch ` +
          `${figures.engineClient.fetchTtfbP50Ms} ms, ${figures.engineClient.fetchChunkP99Us} µs. ` +
          `CPU of the frontend process (independent of the load): ${ttft64.frontendCpuUsPerRequest} µs per request at 64 streams; per relayed chunk ` +
          `${chunks64.passThroughCpuUsPerChunk} µs pass-through, ${chunks64.chatRewriteCpuUsPerChunk} µs with the chat rewrite (request handling shared over 32 chunks). ` +
          `Load average (1 min) ${figures.loadAverage1mBefore} before, ${figures.loadAverage1mAfter} after, on 2 cores shared with other work: latency percentiles include the scheduler's waits for a core.`,
      ].join("\n");
      return { figures, markdown, charts };
    } finally {
      process.off("SIGINT", onSignal);
      await cleanup();
    }
  },
};
