import { isAbsolute, resolve } from "node:path";
import { z } from "zod";
import { parseWorkerId, workerIdFromName, formatWorkerId } from "./worker-id.js";
import {
  OPTIONAL_MODEL_CARD_FILES,
  REQUIRED_MODEL_CARD_FILES,
  WORKER_ROLES,
  type KvEventEndpoints,
  type ModelCard,
  type ModelCardFileSource,
  type WorkerInfo,
} from "./worker.js";

const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$/;
const TCP_ENDPOINT = /^tcp:\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.*-]+):(\d{1,5})$/;

function validPort(text: string | undefined): boolean {
  const port = Number(text);
  return Number.isInteger(port) && port > 0 && port <= 65535;
}

const hostPort = z
  .string()
  .refine((value) => validPort(HOST_PORT.exec(value)?.[2]), { message: "must be host:port (port 1-65535)" });
const tcpEndpoint = z
  .string()
  .refine((value) => validPort(TCP_ENDPOINT.exec(value)?.[2]), { message: "must be tcp://host:port (port 1-65535)" });
const positiveInt = z.number().int().positive();

const workerIdInput = z.union([z.bigint(), z.string(), z.number().int().nonnegative()]).transform((value, ctx) => {
  try {
    return parseWorkerId(String(value));
  } catch (error) {
    ctx.addIssue({ code: "custom", message: (error as Error).message });
    return z.NEVER;
  }
});

const natsObjectRef = z.object({
  bucket: z.string().min(1),
  object: z.string().min(1),
  digest: z.string().optional(),
  size: z.number().int().nonnegative().optional(),
});

/** One model-card file: a path (relative to the file that names it), an http(s) URL, or an object-store reference. */
const modelCardFileInput = z.union([z.string().min(1), natsObjectRef]);

const modelCardInput = z
  .object({
    /** Directory holding the standard tokenizer files. */
    dir: z.string().min(1).optional(),
    files: z.record(z.string().min(1), modelCardFileInput).optional(),
  })
  .refine((card) => card.dir !== undefined || card.files !== undefined, { message: "needs dir or files" });

const kvEventsInput = z.object({
  /** Base PUB endpoint; DP rank r publishes on port + r. */
  endpoint: tcpEndpoint.optional(),
  /** Explicit PUB endpoint per rank. */
  endpoints: z.array(tcpEndpoint).min(1).optional(),
  replayEndpoint: tcpEndpoint.optional(),
  replayEndpoints: z.array(tcpEndpoint).min(1).optional(),
});

/**
 * A worker as written in a static file, an environment list or a NATS registry entry. Only `name` and
 * `http` are required; `id` defaults to `workerIdFromName(name)`.
 */
export const workerSpecSchema = z
  .object({
    name: z.string().min(1),
    id: workerIdInput.optional(),
    role: z.enum(WORKER_ROLES).optional(),
    namespace: z.string().optional(),
    component: z.string().optional(),
    http: hostPort,
    /** HTTP endpoint per DP rank, when ranks listen on separate ports. */
    rankHttp: z.array(hostPort).min(1).optional(),
    dpSize: positiveInt.optional(),
    dpStartRank: z.number().int().nonnegative().optional(),
    kvEvents: kvEventsInput.optional(),
    model: z.string().min(1).optional(),
    blockSize: positiveInt.optional(),
    totalKvBlocks: positiveInt.optional(),
    maxNumBatchedTokens: positiveInt.optional(),
    modelCard: modelCardInput.optional(),
  })
  .strict()
  .superRefine((spec, ctx) => {
    const dpSize = spec.dpSize ?? spec.rankHttp?.length ?? 1;
    const check = (list: readonly unknown[] | undefined, path: (string | number)[]): void => {
      if (list && list.length !== dpSize) {
        ctx.addIssue({ code: "custom", path, message: `has ${list.length} entries but dpSize is ${dpSize}` });
      }
    };
    check(spec.rankHttp, ["rankHttp"]);
    check(spec.kvEvents?.endpoints, ["kvEvents", "endpoints"]);
    check(spec.kvEvents?.replayEndpoints, ["kvEvents", "replayEndpoints"]);
    if (spec.kvEvents && !spec.kvEvents.endpoint && !spec.kvEvents.endpoints) {
      ctx.addIssue({ code: "custom", path: ["kvEvents"], message: "needs endpoint or endpoints" });
    }
  });

export type WorkerSpec = z.input<typeof workerSpecSchema>;
type ParsedWorkerSpec = z.output<typeof workerSpecSchema>;

/** How relative model-card paths are resolved. */
export interface WorkerSpecContext {
  /** Directory relative model-card paths are resolved against. */
  baseDir?: string;
}

/** `tcp://host:port` with the port moved by `offset` (vLLM's data-parallel rank convention). */
export function offsetTcpPort(endpoint: string, offset: number): string {
  const match = TCP_ENDPOINT.exec(endpoint);
  if (!match) throw new RangeError(`"${endpoint}" is not tcp://host:port`);
  return `tcp://${match[1]}:${Number(match[2]) + offset}`;
}

function rankEndpoints(base: string | undefined, explicit: readonly string[] | undefined, ranks: number[]) {
  return explicit ?? (base === undefined ? undefined : ranks.map((rank) => offsetTcpPort(base, rank)));
}

function modelCardFromSpec(card: NonNullable<ParsedWorkerSpec["modelCard"]>, baseDir: string): ModelCard {
  const files: Record<string, ModelCardFileSource> = {};
  const localPath = (path: string): ModelCardFileSource => ({
    kind: "path",
    path: isAbsolute(path) ? path : resolve(baseDir, path),
  });
  if (card.dir !== undefined) {
    for (const name of [...REQUIRED_MODEL_CARD_FILES, ...OPTIONAL_MODEL_CARD_FILES]) {
      files[name] = localPath(resolve(baseDir, card.dir, name));
    }
  }
  for (const [name, source] of Object.entries(card.files ?? {})) {
    if (typeof source !== "string") files[name] = { kind: "nats-object", ...source };
    else files[name] = /^https?:\/\//.test(source) ? { kind: "url", url: source } : localPath(source);
  }
  return { files };
}

/** Turns a validated spec into a `WorkerInfo` (derived id, per-rank endpoints, absolute paths). */
export function workerFromSpec(spec: ParsedWorkerSpec, context: WorkerSpecContext = {}): WorkerInfo {
  const dpSize = spec.dpSize ?? spec.rankHttp?.length ?? 1;
  const dpStartRank = spec.dpStartRank ?? 0;
  const ranks = Array.from({ length: dpSize }, (_, i) => dpStartRank + i);
  const rankHttpEndpoints = spec.rankHttp ?? ranks.map(() => spec.http);
  const worker: WorkerInfo = {
    id: spec.id ?? workerIdFromName(spec.name),
    name: spec.name,
    role: spec.role ?? "both",
    namespace: spec.namespace ?? "",
    component: spec.component ?? "",
    httpEndpoint: rankHttpEndpoints[0]!,
    rankHttpEndpoints,
    dpSize,
    dpStartRank,
  };
  if (spec.kvEvents) {
    const kvEvents: KvEventEndpoints = {
      endpoints: rankEndpoints(spec.kvEvents.endpoint, spec.kvEvents.endpoints, ranks)!,
    };
    const replay = rankEndpoints(spec.kvEvents.replayEndpoint, spec.kvEvents.replayEndpoints, ranks);
    if (replay) kvEvents.replayEndpoints = replay;
    worker.kvEvents = kvEvents;
  }
  if (spec.model !== undefined) worker.modelName = spec.model;
  if (spec.blockSize !== undefined) worker.blockSize = spec.blockSize;
  if (spec.totalKvBlocks !== undefined || spec.maxNumBatchedTokens !== undefined) {
    worker.capacity = {};
    if (spec.totalKvBlocks !== undefined) worker.capacity.totalKvBlocks = spec.totalKvBlocks;
    if (spec.maxNumBatchedTokens !== undefined) worker.capacity.maxNumBatchedTokens = spec.maxNumBatchedTokens;
  }
  if (spec.modelCard) worker.modelCard = modelCardFromSpec(spec.modelCard, context.baseDir ?? process.cwd());
  return worker;
}

/**
 * The JSON-serialisable spec of a worker (id as decimal text, per-rank endpoints explicit). Model-card
 * files must already be object-store references or paths/URLs; in-memory bytes are not serialisable.
 */
export function workerToSpec(worker: WorkerInfo): WorkerSpec {
  const spec: WorkerSpec = {
    name: worker.name,
    id: formatWorkerId(worker.id),
    role: worker.role,
    namespace: worker.namespace,
    component: worker.component,
    http: worker.httpEndpoint,
    rankHttp: [...worker.rankHttpEndpoints],
    dpSize: worker.dpSize,
    dpStartRank: worker.dpStartRank,
  };
  if (worker.kvEvents) {
    spec.kvEvents = { endpoints: [...worker.kvEvents.endpoints] };
    if (worker.kvEvents.replayEndpoints) spec.kvEvents.replayEndpoints = [...worker.kvEvents.replayEndpoints];
  }
  if (worker.modelName !== undefined) spec.model = worker.modelName;
  if (worker.blockSize !== undefined) spec.blockSize = worker.blockSize;
  if (worker.capacity?.totalKvBlocks !== undefined) spec.totalKvBlocks = worker.capacity.totalKvBlocks;
  if (worker.capacity?.maxNumBatchedTokens !== undefined)
    spec.maxNumBatchedTokens = worker.capacity.maxNumBatchedTokens;
  if (worker.modelCard) {
    const files: Record<string, string | z.input<typeof natsObjectRef>> = {};
    for (const [name, source] of Object.entries(worker.modelCard.files)) {
      if (source.kind === "bytes") throw new TypeError(`model-card file ${name} holds bytes; upload it first`);
      if (source.kind === "path") files[name] = source.path;
      else if (source.kind === "url") files[name] = source.url;
      else {
        const { kind: _kind, ...ref } = source;
        files[name] = ref;
      }
    }
    spec.modelCard = { files };
  }
  return spec;
}
