import { createServer, type Server } from "node:http";
import { workerIdFromName, type ModelCard, type WorkerInfo } from "@dynamo/discovery";
import { EngineWorker, type EngineOptions, type KvEventBatch } from "@dynamo/engine-sim";
import { closeServer, listen } from "@dynamo/http-server";
import { ZmqEventPublisher, type VllmEncoding } from "@dynamo/kv-events";
import type { Tokenizer } from "@dynamo/tokenizer";
import type { Faults } from "./faults.js";
import type { RankContext } from "./generate.js";
import { EngineMetrics } from "./metrics.js";
import type { ReceivedLog } from "./received.js";
import { serveRank } from "./server.js";
import type { MockerWorker } from "./types.js";

/** Everything the workers of one process share. */
export interface WorkerEnvironment {
  readonly engineOptions: Omit<EngineOptions, "onKvEvents" | "onCallbackError" | "dataParallelRank">;
  readonly dataParallelSize: number;
  readonly servedModelName: string;
  readonly loraModules: readonly string[];
  readonly tokenizer: Tokenizer;
  readonly defaultMaxTokens: number;
  readonly host: string;
  readonly advertiseHost: string;
  readonly podName: string | undefined;
  readonly kvEventsEncoding: VllmEncoding;
  readonly maxBodyBytes: number;
  readonly received: ReceivedLog;
  readonly faults: Faults;
  readonly role: WorkerInfo["role"];
  readonly namespace: string;
  readonly component: string;
  readonly modelCard: ModelCard | undefined;
  readonly log: (message: string) => void;
}

/** Where one worker listens: HTTP base port (0: free ports), ZeroMQ PUB and replay base ports. */
export interface WorkerPorts {
  readonly http: number;
  readonly zmq?: number;
  readonly replay?: number;
}

/**
 * One simulated vLLM worker: an `EngineWorker` with `dataParallelSize` ranks, each rank with its own
 * HTTP server (port + rank), metrics and ZeroMQ publisher (PUB and replay ports + rank) whose topic is
 * vLLM's `kv@<ip>:<port>@<model>`.
 */
export class SimulatedWorker {
  private constructor(
    readonly name: string,
    readonly id: bigint,
    readonly engine: EngineWorker,
    private readonly servers: readonly Server[],
    private readonly publishers: readonly ZmqEventPublisher[],
    readonly info: WorkerInfo,
    readonly summary: MockerWorker,
  ) {}

  static async start(name: string, env: WorkerEnvironment, ports: WorkerPorts): Promise<SimulatedWorker> {
    const id = workerIdFromName(name);
    const publishers: ZmqEventPublisher[] = [];
    const encoding = { eventEncoding: env.kvEventsEncoding };
    const publish = (batch: KvEventBatch): void => {
      publishers[batch.dataParallelRank]
        ?.publish(batch, encoding)
        .catch((error: unknown) => env.log(`mocker ${name}: KV events not published: ${(error as Error).message}`));
    };
    const engine = new EngineWorker({
      ...env.engineOptions,
      dataParallelSize: env.dataParallelSize,
      onKvEvents: publish,
      onCallbackError: (error) => env.log(`mocker ${name}: ${(error as Error).stack ?? String(error)}`),
    });
    const servers: Server[] = [];
    const rankPorts: number[] = [];
    try {
      for (const rankEngine of engine.ranks) {
        const rank = rankEngine.rank;
        const server = createServer({ keepAliveTimeout: 30_000 });
        servers.push(server);
        const port = await listen(server, ports.http === 0 ? 0 : ports.http + rank, env.host);
        rankPorts.push(port);
        const metrics = new EngineMetrics(rankEngine, env.servedModelName);
        const context: RankContext = {
          workerId: id,
          workerName: name,
          rank,
          engine: rankEngine,
          metrics,
          port,
          servedModelName: env.servedModelName,
          loraModules: env.loraModules,
          tokenizer: env.tokenizer,
          defaultMaxTokens: env.defaultMaxTokens,
          advertiseHost: env.advertiseHost,
          podName: env.podName ?? name,
          received: env.received,
        };
        serveRank(server, {
          context,
          faults: env.faults,
          maxBodyBytes: env.maxBodyBytes,
          metrics: async () => ({ contentType: metrics.registry.contentType, text: await metrics.registry.metrics() }),
          log: env.log,
        });
        if (ports.zmq !== undefined)
          publishers.push(
            await ZmqEventPublisher.open({
              endpoint: `tcp://*:${ports.zmq}`,
              ...(ports.replay !== undefined && { replayEndpoint: `tcp://*:${ports.replay}` }),
              dpRank: rank,
              topic: `kv@${env.advertiseHost}:${port}@${env.servedModelName}`,
            }),
          );
      }
    } catch (error) {
      await closeAll(servers, publishers);
      throw error;
    }
    const host = env.advertiseHost;
    const ranks = engine.ranks.map((_, rank) => rank);
    const info: WorkerInfo = {
      id,
      name,
      role: env.role,
      namespace: env.namespace,
      component: env.component,
      httpEndpoint: `${host}:${rankPorts[0]}`,
      rankHttpEndpoints: rankPorts.map((port) => `${host}:${port}`),
      dpSize: env.dataParallelSize,
      dpStartRank: 0,
      ...(ports.zmq !== undefined && {
        kvEvents: {
          endpoints: ranks.map((rank) => `tcp://${host}:${ports.zmq! + rank}`),
          ...(ports.replay !== undefined && {
            replayEndpoints: ranks.map((rank) => `tcp://${host}:${ports.replay! + rank}`),
          }),
        },
      }),
      modelName: env.servedModelName,
      blockSize: engine.ranks[0]!.config.blockSize,
      capacity: {
        totalKvBlocks: engine.ranks[0]!.config.numGpuBlocks,
        maxNumBatchedTokens: engine.ranks[0]!.config.maxNumBatchedTokens,
      },
      ...(env.modelCard !== undefined && { modelCard: env.modelCard }),
    };
    const summary: MockerWorker = {
      id,
      name,
      url: `http://${env.host === "0.0.0.0" ? "127.0.0.1" : env.host}:${rankPorts[0]}`,
      port: rankPorts[0]!,
      rankPorts,
      ...(ports.zmq !== undefined && { zmqPort: ports.zmq }),
      ...(ports.replay !== undefined && { replayPort: ports.replay }),
    };
    return new SimulatedWorker(name, id, engine, servers, publishers, info, summary);
  }

  /** Closes the HTTP servers (open connections too) and the ZeroMQ sockets. */
  close(): Promise<void> {
    return closeAll(this.servers, this.publishers);
  }
}

async function closeAll(servers: readonly Server[], publishers: readonly ZmqEventPublisher[]): Promise<void> {
  await Promise.all([
    ...servers.filter((server) => server.listening).map((server) => closeServer(server, { force: true })),
    ...publishers.map((publisher) => publisher.close()),
  ]);
}
