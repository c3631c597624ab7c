import { Server, ServerCredentials, type ChannelOptions, type ServerDuplexStream } from "@grpc/grpc-js";
import type { ExtProcLogger, RequestRouter, StreamSummary } from "../types.js";
import type { ProcessingRequest, ProcessingResponse } from "../wire/messages.js";
import { externalProcessorService } from "../wire/proto.js";
import {
  ByteBudget,
  DEFAULT_MAX_REQUEST_BODY_BYTES,
  ExtProcStream,
  GrpcCode,
  InflightLimit,
  type StreamSink,
} from "../stream/stream.js";
import { HealthStatus } from "./health.js";
import { selfSignedCertificate, type TlsMaterial } from "./tls.js";

/** Default ext_proc port. */
export const DEFAULT_EXT_PROC_PORT = 9002;
/** Default plaintext health port. */
export const DEFAULT_HEALTH_PORT = 9003;
/** Default bound on decisions in progress (`DYN_EPP_MAX_INFLIGHT_REQUESTS`). */
export const DEFAULT_MAX_INFLIGHT_ROUTES = 1024;
/** Default bound on request bodies buffered across streams. */
export const DEFAULT_MAX_BUFFERED_BODY_BYTES = 512 * 1024 * 1024;

export interface ExtProcServerOptions {
  router: RequestRouter;
  /** Listen address (default `0.0.0.0`). */
  host?: string;
  /** ext_proc port (default 9002; 0 picks a free one). */
  port?: number;
  /** `true` (default): TLS with a certificate generated at start; `false`: plaintext h2c; or your own PEMs. */
  tls?: boolean | TlsMaterial;
  /** Also serve `grpc.health.v1` in plaintext on this port (e.g. 9003; 0 picks a free one). */
  healthPort?: number;
  /** Largest request body (default 32 MiB; 413 beyond). */
  maxRequestBodyBytes?: number;
  /** Decisions in progress at once (default 1024; 503 beyond). */
  maxInflightRoutes?: number;
  /** Request-body bytes buffered across all streams (default 512 MiB; 503 beyond). */
  maxBufferedBodyBytes?: number;
  /** Conformance-test hooks (`test-epp-endpoint-selection`, served-endpoint echo). Off by default. */
  conformanceHooks?: boolean;
  /** Polled every `readinessIntervalMs` (500) for the readiness services; absent: ready once listening. */
  readiness?: () => boolean;
  readinessIntervalMs?: number;
  logger?: ExtProcLogger;
  /** Called once per finished stream. */
  onStreamEnd?: (summary: StreamSummary) => void;
  /** Extra grpc-js server options. */
  channelOptions?: ChannelOptions;
  /**
   * Incoming RST_STREAM allowance per connection (token bucket). Envoy resets every ext_proc stream
   * when its request ends, so the HTTP/2 library's default (burst 1000, 33/s) would make the server
   * drop Envoy's connection with GOAWAY once traffic passes 33 requests/s. Applied on Node >= 22.11
   * (older Node has no such setting and keeps the default). Default: burst and rate 20,000.
   */
  streamResetLimit?: { burst: number; ratePerSecond: number };
}

export interface ShutdownOptions {
  /** Report NOT_SERVING for this long before refusing new streams (default 0). */
  propagationMs?: number;
  /** Let in-flight streams finish for this long, then cancel them (default 30 s). */
  graceMs?: number;
}

/**
 * The ext_proc gRPC server: `ExternalProcessor.Process` (one `ExtProcStream` per call) and
 * `grpc.health.v1` on the same port, plus optionally a plaintext health port.
 */
export class ExtProcServer {
  readonly health = new HealthStatus();
  private readonly streams = new Set<ExtProcStream>();
  private readonly limit: InflightLimit;
  private readonly bodyBudget: ByteBudget;
  private readinessTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  private constructor(
    private readonly options: ExtProcServerOptions,
    private readonly server: Server,
    private readonly healthServer: Server | undefined,
    /** Bound ext_proc port. */
    readonly port: number,
    /** Bound health port, when one was asked for. */
    readonly healthPort: number | undefined,
    /** The TLS material in use (the generated certificate included); undefined for h2c. */
    readonly tls: TlsMaterial | undefined,
  ) {
    this.limit = new InflightLimit(options.maxInflightRoutes ?? DEFAULT_MAX_INFLIGHT_ROUTES);
    this.bodyBudget = new ByteBudget(options.maxBufferedBodyBytes ?? DEFAULT_MAX_BUFFERED_BODY_BYTES);
  }

  /** Binds the ports and starts serving; liveness SERVING, readiness as `options.readiness` says. */
  static async start(options: ExtProcServerOptions): Promise<ExtProcServer> {
    const host = options.host ?? "0.0.0.0";
    const tls =
      options.tls === false
        ? undefined
        : options.tls === undefined || options.tls === true
          ? await selfSignedCertificate()
          : options.tls;
    const credentials =
      tls === undefined
        ? ServerCredentials.createInsecure()
        : ServerCredentials.createSsl(
            null,
            [{ private_key: Buffer.from(tls.key), cert_chain: Buffer.from(tls.cert) }],
            false,
          );
    const server = new Server(options.channelOptions);
    allowStreamResets(server, options.streamResetLimit ?? DEFAULT_STREAM_RESET_LIMIT);
    const port = await bind(server, host, options.port ?? DEFAULT_EXT_PROC_PORT, credentials);
    let healthServer: Server | undefined;
    let healthPort: number | undefined;
    if (options.healthPort !== undefined) {
      healthServer = new Server();
      healthPort = await bind(healthServer, host, options.healthPort, ServerCredentials.createInsecure());
    }
    const instance = new ExtProcServer(options, server, healthServer, port, healthPort, tls);
    server.addService(externalProcessorService() as never, {
      Process: (call: ServerDuplexStream<ProcessingRequest, ProcessingResponse>) => instance.handle(call),
    });
    instance.health.addTo(server);
    if (healthServer) instance.health.addTo(healthServer);
    instance.health.setLive(true);
    instance.pollReadiness();
    return instance;
  }

  /** Streams currently open. */
  get activeStreams(): number {
    return this.streams.size;
  }

  /** Decisions currently in progress. */
  get inflightRoutes(): number {
    return this.limit.inflight;
  }

  /** Request-body bytes currently buffered across streams. */
  get bufferedBodyBytes(): number {
    return this.bodyBudget.used;
  }

  /**
   * Graceful stop: readiness NOT_SERVING at once, wait `propagationMs`, refuse new streams, let open
   * ones finish within `graceMs`, then cancel what is left (their requests are freed).
   */
  async shutdown(options: ShutdownOptions = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.readinessTimer);
    this.health.setReady(false);
    if ((options.propagationMs ?? 0) > 0) await sleep(options.propagationMs!);
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, options.graceMs ?? 30_000);
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
    this.health.setLive(false);
    this.healthServer?.forceShutdown();
  }

  /** Immediate stop: cancels every open stream. */
  async close(): Promise<void> {
    this.stopped = true;
    clearInterval(this.readinessTimer);
    this.health.setReady(false);
    this.health.setLive(false);
    this.server.forceShutdown();
    this.healthServer?.forceShutdown();
  }

  private pollReadiness(): void {
    const readiness = this.options.readiness;
    if (readiness === undefined) {
      this.health.setReady(true);
      return;
    }
    const evaluate = () => {
      let ready = false;
      try {
        ready = readiness();
      } catch (error) {
        this.options.logger?.warn({ err: error }, "readiness check failed");
      }
      if (!this.stopped) this.health.setReady(ready);
    };
    evaluate();
    this.readinessTimer = setInterval(evaluate, this.options.readinessIntervalMs ?? 500);
    this.readinessTimer.unref();
  }

  private handle(call: ServerDuplexStream<ProcessingRequest, ProcessingResponse>): void {
    let ended = false;
    const sink: StreamSink = {
      send: (response) => {
        if (!ended && !call.cancelled) call.write(response);
      },
      finish: (error) => {
        if (ended) return;
        ended = true;
        if (call.cancelled) return;
        if (error === undefined) call.end();
        else call.emit("error", { code: error.code, details: error.message });
      },
    };
    const stream = new ExtProcStream(
      {
        router: this.options.router,
        maxRequestBodyBytes: this.options.maxRequestBodyBytes ?? DEFAULT_MAX_REQUEST_BODY_BYTES,
        conformanceHooks: this.options.conformanceHooks ?? false,
        gate: this.limit,
        bodyBudget: this.bodyBudget,
        ...(this.options.logger !== undefined ? { logger: this.options.logger } : {}),
        ...(this.options.onStreamEnd !== undefined ? { onStreamEnd: this.options.onStreamEnd } : {}),
      },
      sink,
    );
    this.streams.add(stream);
    const close = (cause: "end" | "cancelled" | "error") => {
      this.streams.delete(stream);
      stream.close(cause);
    };
    call.on("data", (message: ProcessingRequest) => {
      try {
        stream.receive(message);
      } catch (error) {
        this.options.logger?.error({ streamId: stream.streamId, err: error }, "ext_proc stream failed");
        sink.finish({ code: GrpcCode.INTERNAL, message: "endpoint picker internal error" });
        close("error");
      }
    });
    call.on("end", () => {
      close("end");
      sink.finish();
    });
    call.on("cancelled", () => close("cancelled"));
    call.on("error", () => close("error"));
    call.on("close", () => close("end"));
  }
}

/** Default incoming-reset allowance (see `ExtProcServerOptions.streamResetLimit`). */
export const DEFAULT_STREAM_RESET_LIMIT = { burst: 20_000, ratePerSecond: 20_000 };

/**
 * grpc-js builds its HTTP/2 servers from an options object it keeps and offers no setting for the reset
 * limiter, so the two Node options are added to that object before any port is bound.
 */
function allowStreamResets(server: Server, limit: { burst: number; ratePerSecond: number }): void {
  const internals = server as unknown as { commonServerOptions?: Record<string, unknown> };
  if (internals.commonServerOptions === undefined) return;
  internals.commonServerOptions["streamResetBurst"] = limit.burst;
  internals.commonServerOptions["streamResetRate"] = limit.ratePerSecond;
}

function bind(server: Server, host: string, port: number, credentials: ServerCredentials): Promise<number> {
  const address = host.includes(":") && !host.startsWith("[") ? `[${host}]:${port}` : `${host}:${port}`;
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (error, bound) => (error ? reject(error) : resolve(bound)));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
