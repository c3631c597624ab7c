import { createServer, type Server } from "node:http";
import { KubernetesDiscovery, type WorkerRegistry } from "@dynamo/discovery";
import { ExtProcServer, type StreamSummary, type TlsMaterial } from "@dynamo/ext-proc";
import { closeServer, listen, portOf, sendText } from "@dynamo/http-server";
import { ReplicaSync } from "@dynamo/replica-sync";
import {
  DEFAULT_SERVICE_SETTINGS,
  RouterService,
  connectNats,
  type RouterServiceOptions,
} from "@dynamo/router-service";
import type { NatsConnection } from "@nats-io/transport-node";
import { pino, type Logger } from "pino";
import type { EppConfig } from "./config.js";
import { EppMetrics } from "./metrics.js";
import { EppPicker } from "./picker.js";
import { PoolRegistry } from "./pools.js";
import { ProbeServer } from "./probe.js";
import { RemoteTokenizer } from "./remote-tokenizer.js";

export interface EppOptions {
  readonly config: EppConfig;
  /** Listen address of every server (default `0.0.0.0`). */
  readonly host?: string;
  /** Where logs and the decision log go (default: JSON lines on stdout at `DYN_LOG`'s level). */
  readonly logger?: Logger;
  /** TLS material to serve instead of a self-signed certificate (with `DYN_SECURE_SERVING=true`). */
  readonly tls?: TlsMaterial;
  /** Overrides of the router service's options (tests: in-process workers, a shared tokenizer, a clock). */
  readonly service?: RouterServiceOptions;
}

/**
 * The endpoint picker: ext_proc (9002, TLS by default) and gRPC health (9003) over the router service,
 * Prometheus metrics (9090), the optional probe API, a structured decision log, and graceful shutdown.
 * Ready (health SERVING) only once worker discovery has synced.
 */
export class Epp {
  private stopping: Promise<void> | undefined;

  private constructor(
    readonly config: EppConfig,
    readonly service: RouterService,
    readonly picker: EppPicker,
    readonly server: ExtProcServer,
    readonly metrics: EppMetrics,
    readonly log: Logger,
    private readonly pools: WorkerRegistry | undefined,
    private readonly metricsServer: Server | undefined,
    private readonly probe: ProbeServer | undefined,
    /** Booking sync with the other replicas (`DYN_ROUTER_REPLICA_SYNC=true`), on its own NATS connection. */
    readonly replicas: ReplicaSync | undefined,
    private readonly replicaNats: NatsConnection | undefined,
  ) {}

  static async start(options: EppOptions): Promise<Epp> {
    const { config } = options;
    const settings = config.epp;
    const host = options.host ?? "0.0.0.0";
    const log =
      options.logger ??
      pino({ level: settings.logLevel, base: { component: "epp" } }, pino.destination({ dest: 1, sync: false }));
    for (const note of config.notes) log.info(note);

    const remoteTokenizer =
      settings.tokenizerServiceUrl === undefined
        ? undefined
        : new RemoteTokenizer({
            url: settings.tokenizerServiceUrl,
            timeoutMs: settings.tokenizationTimeoutMs,
            maxResponseBytes: settings.tokenizerMaxResponseBytes,
          });
    // Two InferencePools make one registry built here; otherwise the router service builds its own.
    const source = config.workers;
    const pools =
      source.kind === "pools"
        ? new PoolRegistry([new KubernetesDiscovery(source.decode), new KubernetesDiscovery(source.prefill)])
        : undefined;
    // Replicas share bookings over NATS: this replica's changes go out, its peers' come in.
    let replicas: ReplicaSync | undefined;
    const serviceSettings = { ...DEFAULT_SERVICE_SETTINGS, ...config.service };
    const replicaNats = config.router.replicaSync ? await connectNats(serviceSettings) : undefined;
    const service = await RouterService.fromEnv(config.env, {
      ...(replicaNats !== undefined && {
        onBookingChange: (change) => replicas?.publish(change),
        onDecisionAudit: (audit) => replicas?.audit(audit),
      }),
      settings: config.service,
      ...(pools !== undefined && { discovery: pools }),
      tokenizer:
        remoteTokenizer !== undefined
          ? false
          : settings.tokenizerThreads !== undefined
            ? { threads: settings.tokenizerThreads }
            : {},
      log: (line) => log.warn(line),
      ...options.service,
    });

    let server: ExtProcServer | undefined;
    let metricsServer: Server | undefined;
    let probe: ProbeServer | undefined;
    let warmJoined = replicaNats === undefined;
    try {
      if (replicaNats !== undefined) {
        replicas = await ReplicaSync.start(replicaNats, service, {
          subjectPrefix: replicaSubjectPrefix(
            serviceSettings.namespace,
            settings.modelName,
            settings.inferencePoolName,
          ),
          ...replicaLease(settings.replicaLeaseSecs),
          log: (line) => log.warn(line),
        });
        // Ready only once the peers' live bookings are in: the first requests route on the whole cluster's load.
        void replicas.warmJoin().then((peers) => {
          warmJoined = true;
          log.info({ peers, replicaId: replicas!.replicaId }, "replica sync: joined");
        });
      }
      const metrics = new EppMetrics(
        settings.modelName,
        settings.inferencePoolName,
        {
          replicas: () => replicas?.stats,
          streams: () => server?.activeStreams ?? 0,
          bookings: () => service.status().activeBookings,
          workers: () => service.status().workers,
          workerEvents: () => service.status().workerEvents.map((w) => ({ ...w, workerId: w.workerId.toString() })),
        },
        settings.eventLoopResolutionMs,
      );
      const picker = new EppPicker({
        service,
        settings,
        metrics,
        log,
        ...(remoteTokenizer !== undefined && { remoteTokenizer }),
      });
      server = await ExtProcServer.start({
        router: picker,
        host,
        port: settings.extProcPort,
        tls: settings.secureServing ? (options.tls ?? true) : false,
        ...(settings.healthPort !== settings.extProcPort && { healthPort: settings.healthPort }),
        maxRequestBodyBytes: settings.maxRequestBodyBytes,
        maxInflightRoutes: settings.maxInflightRequests,
        conformanceHooks: settings.conformanceHooks,
        readiness: () => warmJoined && service.ready && service.registry?.ready !== false,
        logger: log,
        onStreamEnd: (summary) => {
          metrics.stream(summary);
          if (summary.rejection !== undefined) logRejection(log, summary);
        },
      });
      if (settings.metricsPort !== 0) {
        const metricsHttp = createServer((req, res) => {
          if (req.method !== "GET" || (req.url ?? "/").split("?", 1)[0] !== "/metrics")
            return sendText(res, 404, "not found: GET /metrics");
          metrics.text().then(
            (text) => sendText(res, 200, text, { "content-type": metrics.registry.contentType }),
            (error: unknown) => sendText(res, 500, `metrics failed: ${(error as Error).message}`),
          );
        });
        await listen(metricsHttp, settings.metricsPort, host);
        metricsServer = metricsHttp;
      }
      if (settings.probePort !== 0) {
        probe = await ProbeServer.start({
          service,
          host,
          port: settings.probePort,
          timeoutMs: settings.probeTimeoutMs,
          maxInflight: settings.probeMaxInflight,
          maxBodyBytes: settings.maxRequestBodyBytes,
        });
      }
      const epp = new Epp(
        config,
        service,
        picker,
        server,
        metrics,
        log,
        pools,
        metricsServer,
        probe,
        replicas,
        replicaNats,
      );
      log.info(
        {
          extProcPort: server.port,
          tls: server.tls !== undefined,
          healthPort: server.healthPort,
          metricsPort: epp.metricsPort,
          probePort: probe?.port,
          mode: settings.mode,
          discovery: config.service.discovery,
          eventPlane: service.status().eventPlane,
          model: settings.modelName,
        },
        "endpoint picker listening",
      );
      return epp;
    } catch (error) {
      await server?.close();
      if (metricsServer) await closeServer(metricsServer);
      await probe?.close();
      await replicas?.close();
      await replicaNats?.close();
      await service.stop(0);
      await pools?.stop();
      throw error;
    }
  }

  /** Bound metrics port (undefined when disabled). */
  get metricsPort(): number | undefined {
    return this.metricsServer === undefined ? undefined : portOf(this.metricsServer);
  }

  /** Bound probe port (undefined when disabled). */
  get probePort(): number | undefined {
    return this.probe?.port;
  }

  /**
   * Graceful stop (SIGTERM): health NOT_SERVING at once, `DYN_EPP_GRACEFUL_SHUTDOWN_PROPAGATION_SECS` for
   * the gateways to notice, then no new streams; open ones finish within
   * `DYN_EPP_GRACEFUL_SHUTDOWN_DRAIN_SECS` (then they are cancelled and their bookings freed); then the
   * router service, the probe and metrics servers stop. Idempotent.
   */
  shutdown(options: { propagationMs?: number; drainMs?: number } = {}): Promise<void> {
    this.stopping ??= this.stop(
      options.propagationMs ?? this.config.epp.shutdownPropagationSecs * 1000,
      options.drainMs ?? this.config.epp.shutdownDrainSecs * 1000,
    );
    return this.stopping;
  }

  private async stop(propagationMs: number, drainMs: number): Promise<void> {
    this.log.info({ propagationMs, drainMs }, "shutting down: NOT_SERVING");
    await this.server.shutdown({ propagationMs, graceMs: drainMs });
    // Drained: this replica's bookings are freed; the goodbye tells the peers at once.
    await this.replicas?.close();
    await this.replicaNats?.close().catch(() => undefined);
    await this.service.stop(0);
    await this.pools?.stop();
    await this.probe?.close();
    if (this.metricsServer !== undefined) await closeServer(this.metricsServer);
    this.log.info({ activeBookings: this.service.status().activeBookings }, "endpoint picker stopped");
    this.log.flush();
  }
}

/**
 * The subject prefix the replicas of one deployment share: the Dynamo namespace and the pool (or model) they
 * route for, so two EPP deployments on one NATS never mix their bookings.
 */
export function replicaSubjectPrefix(namespace: string, model: string | undefined, pool: string | undefined): string {
  const token = (text: string) => text.replace(/[^A-Za-z0-9_-]/g, "_");
  return `dynamo.${token(namespace)}.epp.${token(pool ?? model ?? "default")}.replicas`;
}

/**
 * The replicas' lease (`DYN_ROUTER_REPLICA_LEASE_SECS`) and heartbeat: a tenth of the lease, at most a second,
 * so a peer misses several heartbeats before its bookings go.
 */
export function replicaLease(leaseSecs: number): { leaseMs: number; heartbeatMs: number } {
  const leaseMs = Math.round(leaseSecs * 1000);
  return { leaseMs, heartbeatMs: Math.max(1, Math.min(1000, Math.round(leaseMs / 10))) };
}

function logRejection(log: Logger, summary: StreamSummary): void {
  log.info(
    {
      requestId: summary.requestId,
      streamId: summary.streamId,
      status: summary.rejection!.status,
      reason: summary.rejection!.reason,
      error: summary.rejection!.message,
      durationMs: Math.round(summary.durationMs * 1000) / 1000,
    },
    "request rejected",
  );
}
