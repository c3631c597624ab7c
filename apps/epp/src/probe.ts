import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { formatWorkerId } from "@dynamo/discovery";
import { EndpointSubset, parseJsonBody } from "@dynamo/ext-proc";
import { closeServer, listen, portOf, readBody, sendJson } from "@dynamo/http-server";
import type { CandidateExplain, RouteExplain } from "@dynamo/kv-router";
import { RouteError, type RouterService, type ServiceDecision } from "@dynamo/router-service";
import { workersInSubset } from "./subset.js";

/** The probe API's path. */
export const PROBE_PATH = "/v1/routing/probe";

export interface ProbeOptions {
  readonly service: RouterService;
  readonly host: string;
  readonly port: number;
  /** Give up after this long (504). */
  readonly timeoutMs: number;
  /** Probes in progress at once (429 beyond). */
  readonly maxInflight: number;
  readonly maxBodyBytes: number;
}

/** One candidate in a probe answer. */
export interface ProbeCandidate {
  readonly worker: string;
  readonly dpRank: number;
  readonly endpoint: string | null;
  readonly overlapBlocks: number;
  readonly hostOverlapBlocks: number;
  readonly diskOverlapBlocks: number;
  /** Prompt blocks left to prefill after the overlap credit. */
  readonly prefillBlocks: number;
  readonly decodeBlocks: number;
  readonly activeRequests: number;
  readonly cost: number;
  readonly busy: boolean;
  /** Not eligible (over a busy threshold); `reason` says which. */
  readonly excluded: boolean;
  readonly chosen: boolean;
  readonly reason: string;
}

/**
 * The explain API (`DYN_EPP_PROBE_PORT`): `POST /v1/routing/probe` with an OpenAI body answers the
 * decision the picker would take for it now, without booking anything: the chosen worker(s), the
 * predicted cache hit, and every candidate's overlap, prefill and decode load, cost, and whether and
 * why it was excluded. `x-gateway-destination-endpoint-subset` (comma-separated `ip:port`s) and
 * `x-tenant-id` act as on the ext_proc path.
 */
export class ProbeServer {
  private inflight = 0;

  private constructor(
    private readonly options: ProbeOptions,
    private readonly server: Server,
  ) {}

  static async start(options: ProbeOptions): Promise<ProbeServer> {
    const server = createServer();
    const probe = new ProbeServer(options, server);
    server.on("request", (req: IncomingMessage, res: ServerResponse) => void probe.handle(req, res));
    await listen(server, options.port, options.host);
    return probe;
  }

  get port(): number {
    return portOf(this.server);
  }

  close(): Promise<void> {
    return closeServer(this.server);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?", 1)[0];
    if (path !== PROBE_PATH) return sendJson(res, 404, { error: `not found: POST ${PROBE_PATH}` });
    if (req.method !== "POST") {
      res.setHeader("allow", "POST");
      return sendJson(res, 405, { error: `use POST ${PROBE_PATH} with an OpenAI request body` });
    }
    if (this.inflight >= this.options.maxInflight) {
      res.setHeader("retry-after", "1");
      return sendJson(res, 429, { error: `too many probes at once (at most ${this.options.maxInflight}); retry` });
    }
    this.inflight++;
    try {
      const read = await readBody(req, this.options.maxBodyBytes);
      if (!read.ok)
        return sendJson(res, 413, { error: `request body exceeds ${read.limitBytes} bytes` }, { connection: "close" });
      const body = read.body;
      const parsed = parseJsonBody(body);
      if (!parsed.ok) return sendJson(res, 400, { error: parsed.message });
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), this.options.timeoutMs);
      });
      const answer = await Promise.race([this.probe(req, parsed.text, parsed.json), timeout]).finally(() =>
        clearTimeout(timer),
      );
      if (answer === "timeout")
        return sendJson(res, 504, {
          error: `no decision within ${this.options.timeoutMs} ms (DYN_EPP_PROBE_TIMEOUT_MS)`,
        });
      sendJson(res, answer.status, answer.body);
    } catch (error) {
      sendJson(res, 500, { error: `probe failed: ${(error as Error).message}` });
    } finally {
      this.inflight--;
    }
  }

  private async probe(
    req: IncomingMessage,
    body: string,
    json: unknown,
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    const { service } = this.options;
    const subsetHeader = req.headers["x-gateway-destination-endpoint-subset"];
    const tenant = req.headers["x-tenant-id"];
    try {
      const tokenized = await service.tokenize({ body, parsedBody: json });
      const subset =
        typeof subsetHeader === "string" && subsetHeader.trim() !== ""
          ? EndpointSubset.of(subsetHeader.split(","))
          : undefined;
      const allowedWorkers = subset === undefined ? undefined : workersInSubset(service, subset);
      const decision = service.routeTokenized(
        {
          queryOnly: true,
          ...(allowedWorkers !== undefined && { allowedWorkers }),
          ...(typeof tenant === "string" && tenant.trim() !== "" && { cacheSalt: tenant.trim() }),
        },
        tokenized,
      );
      return { status: 200, body: this.answer(decision) };
    } catch (error) {
      if (!(error instanceof RouteError)) throw error;
      return {
        status: error.httpStatus,
        body: {
          error: error.message,
          code: error.code,
          ...(error.explain !== undefined && this.candidates(error.explain)),
        },
      };
    }
  }

  private answer(decision: ServiceDecision): Record<string, unknown> {
    return {
      model: decision.model,
      promptTokens: decision.isl,
      blockSize: this.options.service.router?.settings.blockSize,
      mode: decision.mode,
      fallback: decision.fallback,
      chosen: {
        worker: formatWorkerId(decision.worker.workerId),
        dpRank: decision.worker.dpRank,
        endpoint: decision.endpoint ?? null,
        ...(decision.prefillWorker !== undefined && {
          prefillWorker: formatWorkerId(decision.prefillWorker.workerId),
          prefillDpRank: decision.prefillWorker.dpRank,
          prefillEndpoint: decision.prefillEndpoint ?? null,
        }),
      },
      overlapBlocks: decision.overlapBlocks,
      predictedCachedTokens: decision.cachedTokens,
      requiredBlocks: decision.requiredBlocks,
      timings: { tokenizeMs: decision.timings.tokenizeMs, selectMs: decision.timings.routeMs },
      ...this.candidates(decision.explain),
    };
  }

  private candidates(explain: RouteExplain): Record<string, unknown> {
    return {
      policy: explain.policy,
      candidates: explain.decode.map((c) => this.candidate(c)),
      ...(explain.prefill !== undefined && { prefillCandidates: explain.prefill.map((c) => this.candidate(c)) }),
    };
  }

  private candidate(c: CandidateExplain): ProbeCandidate {
    const worker = this.options.service.listWorkers().find((w) => w.id === c.workerId);
    const endpoint = worker?.rankHttpEndpoints[c.dpRank - worker.dpStartRank] ?? worker?.httpEndpoint ?? "";
    return {
      worker: formatWorkerId(c.workerId),
      dpRank: c.dpRank,
      endpoint: endpoint === "" ? null : endpoint,
      overlapBlocks: c.overlapBlocks,
      hostOverlapBlocks: c.hostOverlapBlocks,
      diskOverlapBlocks: c.diskOverlapBlocks,
      prefillBlocks: c.prefillBlocks,
      decodeBlocks: c.decodeBlocks,
      activeRequests: c.activeRequests,
      cost: c.cost,
      busy: c.busy,
      excluded: c.reason.startsWith("excluded") || c.reason.startsWith("skipped"),
      chosen: c.chosen,
      reason: c.reason,
    };
  }
}
