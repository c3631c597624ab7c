import { randomUUID } from "node:crypto";
import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import {
  DESTINATION_ENDPOINT_KEY,
  EndpointSubset,
  HeaderList,
  LB_NAMESPACE,
  SERVED_ENDPOINT_KEY,
  SUBSET_HINT_KEY,
  SUBSET_HINT_NAMESPACE,
  parseHostPort,
  type ExtProcClientOptions,
  type ExtProcExchange,
  type JsonObject,
  type PhaseResult,
  type RequestContinue,
} from "@dynamo/ext-proc";
import { closeServer, listen, portOf, send, sendText } from "@dynamo/http-server";
import { status as grpcStatus } from "@grpc/grpc-js";
import { PickerPool, type Picker, type PickerHealthCheckOptions } from "./pickers.js";
import { ReplayableBody } from "./replayable-body.js";

export interface DevGatewayOptions {
  /** How to reach the endpoint picker; `target` may list several (`host:port,host:port`), spread round-robin. */
  extProc: ExtProcClientOptions;
  /** Health checking of the pickers when there are several. */
  healthCheck?: PickerHealthCheckOptions;
  /**
   * The pool's endpoints (`ip:port`). Sent as the subset hint; a destination outside them is refused
   * (503). Absent: no hint, any destination the picker names is used.
   */
  endpoints?: readonly string[];
  /** Listen address (default 127.0.0.1) and port (default 8080; 0 picks a free one). */
  host?: string;
  port?: number;
  /** Called with one line per request (method, path, status, destination). */
  log?: (line: string) => void;
}

/** Headers that describe one hop and are never forwarded. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "te",
  "trailer",
  "host",
  "content-length",
]);

/**
 * A gateway in the shape of Envoy's ext_proc filter with an ORIGINAL_DST cluster: every request goes
 * through the picker (headers, then the body in full duplex), is sent to the endpoint the picker put in
 * `x-gateway-destination-endpoint`, and its response streams back through the picker.
 */
export class DevGateway {
  private readonly pickers: PickerPool;
  private readonly subset: EndpointSubset | undefined;
  private readonly server: Server;

  private constructor(private readonly options: DevGatewayOptions) {
    this.pickers = new PickerPool(options.extProc, options.healthCheck ?? {}, options.log);
    this.subset = options.endpoints ? EndpointSubset.of(options.endpoints) : undefined;
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        this.options.log?.(`internal error: ${(error as Error).message}`);
        if (!res.headersSent) sendText(res, 500, "gateway error");
        else res.destroy();
      });
    });
  }

  static async start(options: DevGatewayOptions): Promise<DevGateway> {
    const gateway = new DevGateway(options);
    await listen(gateway.server, options.port ?? 8080, options.host ?? "127.0.0.1");
    return gateway;
  }

  get port(): number {
    return portOf(this.server);
  }

  get url(): string {
    return `http://${this.options.host ?? "127.0.0.1"}:${this.port}`;
  }

  async close(): Promise<void> {
    await closeServer(this.server, { force: true });
    this.pickers.close();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const metadata: Record<string, JsonObject> = {};
    if (this.options.endpoints) metadata[SUBSET_HINT_NAMESPACE] = { [SUBSET_HINT_KEY]: [...this.options.endpoints] };
    let exchange: ExtProcExchange | undefined;
    let done = false;
    let gone = false;
    res.on("close", () => {
      if (done) return;
      gone = true;
      exchange?.close();
    });
    try {
      const hasBody = req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0;
      const headers = requestHeaderList(req);
      // With several pickers the body is kept until one answers, to send it again if the first one fails.
      const replayable = hasBody && this.pickers.pickers.length > 1 ? new ReplayableBody(req) : undefined;
      const body = () => (hasBody ? { body: replayable?.reader() ?? req } : {});
      const first = this.pickers.choose();
      if (first === undefined) return sendText(res, 503, "no endpoint picker");
      let picker: Picker = first;
      exchange = picker.client.open({ filterMetadata: metadata });
      let answer = await exchange.processRequest({ headers, ...body() });
      // The picker is gone or refuses streams: nothing reached a worker, so one other picker may take the request.
      for (let retries = 1; answer.type === "error" && unavailable(answer.grpcCode); retries--) {
        this.pickers.failed(picker, answer.message);
        const next: Picker | undefined = retries > 0 && !gone ? this.pickers.choose(picker) : undefined;
        if (next === undefined) break;
        this.options.log?.(
          `${req.method} ${req.url}: endpoint picker ${picker.target} failed before answering (${answer.message}), sent to ${next.target}`,
        );
        exchange.close();
        picker = next;
        exchange = picker.client.open({ filterMetadata: metadata });
        answer = await exchange.processRequest({ headers, ...body() });
      }
      await this.proxy(req, res, exchange, answer, picker);
    } finally {
      done = true;
      exchange?.close();
    }
  }

  private async proxy(
    req: IncomingMessage,
    res: ServerResponse,
    exchange: ExtProcExchange,
    answer: PhaseResult<RequestContinue>,
    picker: Picker,
  ): Promise<void> {
    const via = this.pickers.pickers.length > 1 ? ` via ${picker.target}` : "";
    if (answer.type === "immediate") return send(res, answer.status, answer.body, outgoingHeaders(answer.headers));
    if (answer.type === "error") {
      this.options.log?.(`${req.method} ${req.url}: ext_proc failed${via}: ${answer.message}`);
      return sendText(res, 500, `ext_proc error: ${answer.message}`);
    }
    const destination = answer.headers.get(DESTINATION_ENDPOINT_KEY);
    const candidates = (destination ?? "")
      .split(",")
      .map((e) => e.trim())
      .filter((e) => parseHostPort(e)?.port !== undefined && (this.subset === undefined || this.subset.allows(e)));
    if (candidates.length === 0) {
      this.options.log?.(`${req.method} ${req.url} -> no usable destination in "${destination ?? ""}"`);
      return sendText(res, 503, "no healthy upstream: the endpoint picker named no endpoint inside the pool");
    }
    const upstream = await connectFirst(candidates, answer.headers, answer.body);
    if (upstream === undefined) return sendText(res, 503, "upstream connect error");
    const { response, endpoint } = upstream;
    res.on("close", () => response.destroy());
    const status = response.statusCode ?? 502;
    const noBody =
      req.method === "HEAD" || status === 204 || status === 304 || response.headers["content-length"] === "0";
    const head = await exchange.processResponseHeaders({
      status,
      headers: responseHeaderList(response.headers),
      endOfStream: noBody,
      filterMetadata: { [LB_NAMESPACE]: { [SERVED_ENDPOINT_KEY]: endpoint } },
    });
    if (head.type === "immediate") return send(res, head.status, head.body, outgoingHeaders(head.headers));
    if (head.type === "error") {
      this.options.log?.(`${req.method} ${req.url}: ext_proc failed${via}: ${head.message}`);
      return sendText(res, 500, `ext_proc error: ${head.message}`);
    }
    res.writeHead(Number(head.headers.get(":status") ?? status), outgoingHeaders(head.headers));
    this.options.log?.(`${req.method} ${req.url} -> ${endpoint} ${status}${via}`);
    if (noBody) {
      response.resume();
      res.end();
      return;
    }
    res.flushHeaders();
    try {
      for await (const chunk of exchange.processResponseBody(response)) res.write(chunk);
      res.end();
    } catch (error) {
      this.options.log?.(`${req.method} ${req.url}: response aborted${via}: ${(error as Error).message}`);
      res.destroy();
    }
  }
}

/** The ext_proc stream could not be used at all (picker gone, refusing streams): another picker may answer. */
function unavailable(grpcCode: number | undefined): boolean {
  return grpcCode === grpcStatus.UNAVAILABLE;
}

/** The request headers as Envoy presents them: pseudo-headers first, names lower-cased, an `x-request-id`. */
function requestHeaderList(req: IncomingMessage): HeaderList {
  const entries: Array<[string, string]> = [
    [":method", req.method ?? "GET"],
    [":path", req.url ?? "/"],
    [":authority", req.headers.host ?? ""],
    [":scheme", "http"],
  ];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!.toLowerCase();
    if (!HOP_BY_HOP.has(name) || name === "content-length") entries.push([name, req.rawHeaders[i + 1]!]);
  }
  if (req.headers["x-request-id"] === undefined) entries.push(["x-request-id", randomUUID()]);
  return new HeaderList(entries);
}

function responseHeaderList(headers: IncomingHttpHeaders): Array<[string, string]> {
  const entries: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name)) continue;
    for (const v of Array.isArray(value) ? value : [value]) entries.push([name, v]);
  }
  return entries;
}

/** Headers for an HTTP/1.1 message: no pseudo-headers, no hop-by-hop, duplicates kept. */
function outgoingHeaders(headers: HeaderList): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of headers) {
    if (name.startsWith(":") || HOP_BY_HOP.has(name)) continue;
    const existing = out[name];
    out[name] = existing === undefined ? value : Array.isArray(existing) ? [...existing, value] : [existing, value];
  }
  return out;
}

/** Sends the request to the first candidate that accepts the connection (the fallback walk). */
async function connectFirst(
  candidates: string[],
  headers: HeaderList,
  body: Buffer | undefined,
): Promise<{ response: IncomingMessage; endpoint: string } | undefined> {
  for (const endpoint of candidates) {
    const { host, port } = parseHostPort(endpoint)!;
    try {
      const response = await new Promise<IncomingMessage>((resolve, reject) => {
        const upstream = httpRequest(
          {
            host,
            port,
            method: headers.get(":method") ?? "GET",
            path: headers.get(":path") ?? "/",
            headers: { ...outgoingHeaders(headers), host: headers.get(":authority") ?? endpoint },
          },
          resolve,
        );
        upstream.once("error", reject);
        upstream.end(body);
      });
      return { response, endpoint };
    } catch (error) {
      if (!isConnectError(error)) throw error;
    }
  }
  return undefined;
}

function isConnectError(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code === "ECONNREFUSED" || code === "EHOSTUNREACH" || code === "ENETUNREACH" || code === "ETIMEDOUT";
}
