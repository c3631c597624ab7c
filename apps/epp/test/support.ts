import { createRequire } from "node:module";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { Client, credentials, makeClientConstructor, type ChannelOptions, type ServiceError } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { workerIdFromName } from "@dynamo/discovery";
import { ExtProcClient, SUBSET_HINT_KEY, SUBSET_HINT_NAMESPACE, type ExtProcExchange } from "@dynamo/ext-proc";
import { storedBatch as storedBlocks, type VllmEventBatch } from "@dynamo/kv-events";
import { freePort, startProcess, waitFor, type RunningProcess } from "@dynamo/testkit";
import { TokenizerRegistry } from "@dynamo/tokenizer";
import { pino } from "pino";
import { Epp, eppConfigFromEnv } from "../src/index.js";

/** The seed's sample prompt (vLLM serving Qwen3-0.6B reports 196 prompt tokens for its chat request). */
export const SEED_PROMPT =
  "In the heart of Eldoria, an ancient land of boundless magic and mysterious creatures, lies the long-forgotten city of Aeloria. Once a beacon of knowledge and power, Aeloria was buried beneath the shifting sands of time, lost to the world for centuries. You are an intrepid explorer, known for your unparalleled curiosity and courage, who has stumbled upon an ancient map hinting at ests that Aeloria holds a secret so profound that it has the potential to reshape the very fabric of reality. Your journey will take you through treacherous deserts, enchanted forests, and across perilous mountain ranges. Your Task: Character Background: Develop a detailed background for your character. Describe their motivations for seeking out Aeloria, their skills and weaknesses, and any personal connections to the ancient city or its legends. Are they driven by a quest for knowledge, a search for lost familt clue is hidden.";
export const MODEL = "Qwen/Qwen3-0.6B";
export const BLOCK_SIZE = 16;

/** The seed's sample chat request body. */
export function seedRequest(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model: MODEL,
    messages: [{ role: "user", content: SEED_PROMPT }],
    stream: false,
    max_tokens: 30,
    temperature: 0.0,
    ...extra,
  };
}

export function chat(content: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { model: MODEL, messages: [{ role: "user", content }], ...extra };
}

const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const TSX = createRequire(import.meta.url).resolve("tsx");

/** A TypeScript entry point of the repository run as its own Node process (sources through `@dynamo/source`). */
export function runSource(entry: string, args: string[], env: Record<string, string>): RunningProcess {
  return startProcess(process.execPath, ["--import", TSX, "--conditions=@dynamo/source", entry, ...args], {
    cwd: ROOT,
    env,
  });
}

/** The dev gateway from source on a free port (`args` after `--port 0`), once it listens; `url` is its base URL. */
export async function startDevGateway(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ process: RunningProcess; url: string }> {
  const gateway = runSource("apps/dev-gateway/src/main.ts", ["--port", "0", ...args], env);
  await waitFor(() => gateway.lines.some((l) => l.includes("dev-gateway listening on")), "the dev gateway", 60_000);
  const url = /listening on (http:\/\/\S+),/.exec(gateway.lines.find((l) => l.includes("listening on"))!)![1]!;
  return { process: gateway, url };
}

/** The environment of static discovery over `workers`, every one serving the test model. */
export function staticDiscoveryEnv(workers: readonly WorkerEntry[]): Record<string, string> {
  return {
    DYN_DISCOVERY_BACKEND: "static",
    DYN_DISCOVERY_WORKERS: JSON.stringify({ defaults: { model: MODEL }, workers }),
  };
}

/** A worker of the static discovery document. */
export interface WorkerEntry {
  name: string;
  http: string;
  role?: "prefill" | "decode" | "both";
  dpSize?: number;
  rankHttp?: string[];
}

export const idOf = (name: string) => workerIdFromName(name);

let shared: TokenizerRegistry | undefined;
/** One tokenizer pool shared by the tests of a file (closed by `closeSharedTokenizer`). */
export function sharedTokenizer(): TokenizerRegistry {
  shared ??= new TokenizerRegistry({ threads: 1 });
  return shared;
}
export async function closeSharedTokenizer(): Promise<void> {
  await shared?.close();
  shared = undefined;
}

/** A logger whose JSON lines are kept in memory. */
export function memoryLogger(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n")) if (line.trim() !== "") lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: "info" }, stream), lines };
}

export interface TestEpp {
  epp: Epp;
  client: ExtProcClient;
  lines: Record<string, unknown>[];
  close(): Promise<void>;
}

/**
 * An endpoint picker on free loopback ports, its workers from an inline static discovery document (a
 * real registry), KV events delivered in-process, the file's shared tokenizer pool.
 */
export async function startEpp(
  options: {
    workers?: WorkerEntry[];
    env?: Record<string, string>;
    tls?: boolean;
    clientOptions?: Partial<ConstructorParameters<typeof ExtProcClient>[0]>;
  } = {},
): Promise<TestEpp> {
  const env: Record<string, string> = {
    ...staticDiscoveryEnv(options.workers ?? []),
    DYN_EVENT_PLANE: "none",
    DYN_KV_CACHE_BLOCK_SIZE: String(BLOCK_SIZE),
    DYN_SECURE_SERVING: String(options.tls ?? true),
    DYN_EPP_EXT_PROC_PORT: "0",
    DYN_EPP_HEALTH_PORT: String(await freePort()),
    DYN_EPP_METRICS_PORT: String(await freePort()),
    DYN_MODEL_NAME: MODEL,
    ...options.env,
  };
  const { logger, lines } = memoryLogger();
  const epp = await Epp.start({
    config: eppConfigFromEnv(env),
    host: "127.0.0.1",
    logger,
    service: { tokenizer: sharedTokenizer() },
  });
  await waitFor(() => epp.server.health.ready, "the endpoint picker to be ready", 10_000);
  const client = new ExtProcClient({
    target: `127.0.0.1:${epp.server.port}`,
    tls: options.tls ?? true,
    ...options.clientOptions,
  });
  return {
    epp,
    client,
    lines,
    async close() {
      client.close();
      await epp.shutdown({ propagationMs: 0, drainMs: 1000 });
    },
  };
}

/** Request headers as Envoy sends them for a POST to `path`. */
export function postHeaders(
  path = "/v1/chat/completions",
  extra: Array<[string, string]> = [],
): Array<[string, string]> {
  return [
    [":method", "POST"],
    [":path", path],
    [":authority", "gateway.local"],
    [":scheme", "http"],
    ["content-type", "application/json"],
    ...extra,
  ];
}

/** The subset hint metadata naming these endpoints. */
export function subsetHint(endpoints: string[]): { filterMetadata: Record<string, Record<string, string[]>> } {
  return { filterMetadata: { [SUBSET_HINT_NAMESPACE]: { [SUBSET_HINT_KEY]: endpoints } } };
}

/** Sends one request through a fresh exchange; returns the exchange (still open) and the request phase result. */
export async function send(
  client: ExtProcClient,
  body: unknown,
  options: { headers?: Array<[string, string]>; path?: string; subset?: string[] } = {},
) {
  const exchange = client.open(options.subset ? subsetHint(options.subset) : {});
  const bytes =
    typeof body === "string" || Buffer.isBuffer(body) ? Buffer.from(body) : Buffer.from(JSON.stringify(body));
  const result = await exchange.processRequest({ headers: postHeaders(options.path, options.headers), body: bytes });
  return { exchange, result };
}

/** Runs the response phases of an exchange with a buffered JSON body carrying `usage`, then closes it. */
export async function respond(
  exchange: ExtProcExchange,
  usage: Record<string, unknown> = { prompt_tokens: 10, completion_tokens: 3 },
): Promise<void> {
  const head = await exchange.processResponseHeaders({ status: 200, headers: [["content-type", "application/json"]] });
  if (head.type !== "continue") throw new Error(`response headers: ${head.type}`);
  const body = Buffer.from(JSON.stringify({ id: "x", choices: [{ message: { content: "ok" } }], usage }));
  for await (const chunk of exchange.processResponseBody([body])) void chunk;
  exchange.close();
}

/** A vLLM `BlockStored` batch caching the full blocks of `tokens` (engine hashes from `hashBase`). */
export function storedBatch(tokens: ArrayLike<number>, hashBase: bigint, blocks?: number): VllmEventBatch {
  return storedBlocks(tokens, BLOCK_SIZE, hashBase, blocks);
}

type HealthClient = Client & {
  check(
    request: { service: string },
    callback: (error: ServiceError | null, response?: { status: string }) => void,
  ): void;
};

/** A `grpc.health.v1` client (`options`: extra channel options, e.g. a short reconnect backoff). */
export function healthClient(port: number, tls: boolean, options: ChannelOptions = {}): HealthClient {
  const Health = makeClientConstructor(healthService as never, "Health");
  const creds = tls
    ? credentials.createSsl(null, null, null, { rejectUnauthorized: false })
    : credentials.createInsecure();
  return new Health(`127.0.0.1:${port}`, creds, {
    ...(tls && { "grpc.ssl_target_name_override": "localhost" }),
    ...options,
  }) as unknown as HealthClient;
}

export function checkHealth(client: HealthClient, service: string): Promise<string> {
  return new Promise((resolve, reject) =>
    client.check({ service }, (error, response) => (error ? reject(error) : resolve(response!.status))),
  );
}

/** The value of one series on the metrics endpoint (0 when absent). */
export async function metricValue(port: number, series: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

/** Waits until no booking is left. */
export async function expectFreed(t: TestEpp): Promise<void> {
  await waitFor(() => t.epp.service.status().activeBookings === 0, "every booking to be freed", 10_000);
}
