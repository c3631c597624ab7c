import { DEFAULT_DYNAMO_NAMESPACE } from "@dynamo/discovery";
import { RealtimeDriver, resolveEngineConfig, type Engine } from "@dynamo/engine-sim";
import { TokenizerRegistry } from "@dynamo/tokenizer";
import { Faults } from "./faults.js";
import { modelCardFor, tokenizerSourceFor } from "./model.js";
import { ReceivedLog } from "./received.js";
import { register, type Registration } from "./registration.js";
import type { MockerHandle, MockerOptions } from "./types.js";
import { SimulatedWorker, type WorkerEnvironment, type WorkerPorts } from "./worker.js";

/** Model served when none is named. */
export const DEFAULT_MODEL = "Qwen/Qwen3-0.6B";

/** Base port of worker `w` from a per-worker list (one entry: consecutive blocks of `dpSize` ports). */
function basePort(
  ports: readonly number[] | undefined,
  worker: number,
  dpSize: number,
  flag: string,
): number | undefined {
  if (ports === undefined || ports.length === 0) return undefined;
  if (ports.length === 1) return ports[0]! + worker * dpSize;
  const port = ports[worker];
  if (port === undefined)
    throw new RangeError(`${flag} lists ${ports.length} ports for more workers: give one per worker, or one base port`);
  return port;
}

function ranks(workers: readonly SimulatedWorker[], workerId: bigint | undefined): Engine[] {
  return workers.filter((w) => workerId === undefined || w.id === workerId).flatMap((w) => [...w.engine.ranks]);
}

/**
 * Starts `numWorkers` simulated vLLM workers in this process, on one real-time driver and one tokenizer
 * pool, publishes their KV events over ZeroMQ when ports are given, and registers them in discovery.
 */
export async function startMocker(options: MockerOptions = {}): Promise<MockerHandle> {
  const model = options.model ?? DEFAULT_MODEL;
  const servedModelName = options.servedModelName ?? model;
  const numWorkers = options.numWorkers ?? 1;
  const dpSize = options.dataParallelSize ?? 1;
  if (!Number.isSafeInteger(numWorkers) || numWorkers < 1)
    throw new RangeError(`numWorkers must be a positive integer, got ${numWorkers}`);
  if (!Number.isSafeInteger(dpSize) || dpSize < 1)
    throw new RangeError(`dataParallelSize must be a positive integer, got ${dpSize}`);
  const disaggregationMode = options.disaggregationMode ?? "agg";
  const engineOptions = {
    numGpuBlocks: options.numGpuBlocks,
    blockSize: options.blockSize,
    maxNumSeqs: options.maxNumSeqs,
    maxNumBatchedTokens: options.maxNumBatchedTokens,
    maxModelLen: options.maxModelLen,
    speedupRatio: options.speedupRatio,
    decodeSpeedupRatio: options.decodeSpeedupRatio,
    enablePrefixCaching: options.enablePrefixCaching,
    preemptionMode: options.preemptionMode,
    eviction: options.eviction,
    disaggregationMode,
    kvTransferBandwidth: options.kvTransferBandwidth,
    kvBytesPerToken: options.kvBytesPerToken,
    maxLoras: options.maxLoras,
  };
  resolveEngineConfig(engineOptions); // a bad value fails here, naming the option
  const log = options.log ?? ((message: string) => console.warn(message));
  const source = tokenizerSourceFor(model);
  const tokenizers = new TokenizerRegistry({
    threads: options.tokenizerThreads ?? 1,
    defaultModel: null,
  });
  tokenizers.register(servedModelName, source);
  const received = new ReceivedLog(options.receivedCapacity ?? 1000);
  const faults = new Faults();
  const workers: SimulatedWorker[] = [];
  const driver = new RealtimeDriver([]);
  let registration: Registration | undefined;
  const stop = async () => {
    driver.stop();
    await registration?.close();
    await Promise.all(workers.map((worker) => worker.close()));
    await tokenizers.close();
  };
  try {
    const tokenizer = await tokenizers.get(servedModelName);
    const env: WorkerEnvironment = {
      engineOptions: { ...engineOptions, vocabSize: tokenizer.info.vocabSize },
      dataParallelSize: dpSize,
      servedModelName,
      loraModules: options.loraModules ?? [],
      tokenizer,
      defaultMaxTokens: options.defaultMaxTokens ?? 16,
      host: options.host ?? "127.0.0.1",
      advertiseHost: options.advertiseHost ?? process.env["POD_IP"] ?? "127.0.0.1",
      podName: options.podName ?? process.env["POD_NAME"],
      kvEventsEncoding: options.kvEventsEncoding ?? "array",
      maxBodyBytes: options.maxBodyBytes ?? 32 * 1024 * 1024,
      received,
      faults,
      role: disaggregationMode === "agg" ? "both" : disaggregationMode,
      namespace: options.namespace ?? DEFAULT_DYNAMO_NAMESPACE,
      component: options.component ?? "backend",
      modelCard: modelCardFor(source),
      log,
    };
    const prefix = options.workerNamePrefix ?? `mocker-${process.pid}`;
    for (let w = 0; w < numWorkers; w++) {
      const port = options.port ?? 0;
      const zmq = basePort(options.zmqKvEventsPorts, w, dpSize, "zmqKvEventsPorts");
      const replay = basePort(options.zmqReplayPorts, w, dpSize, "zmqReplayPorts");
      const ports: WorkerPorts = {
        http: port === 0 ? 0 : port + w * dpSize,
        ...(zmq !== undefined && { zmq }),
        ...(replay !== undefined && { replay }),
      };
      const worker = await SimulatedWorker.start(numWorkers === 1 ? prefix : `${prefix}-${w}`, env, ports);
      workers.push(worker);
      for (const engine of worker.engine.ranks) driver.add(engine);
    }
    registration = await register(
      workers.map((worker) => worker.info),
      {
        ...(options.discoveryFile !== undefined && { file: options.discoveryFile }),
        ...(options.natsServers !== undefined && { natsServers: options.natsServers }),
        log,
      },
    );
  } catch (error) {
    await stop();
    throw error;
  }
  let closing: Promise<void> | undefined;
  const sum = (workerId: bigint | undefined, read: (engine: Engine) => number) =>
    ranks(workers, workerId).reduce((total, engine) => total + read(engine), 0);
  return {
    url: workers[0]!.summary.url,
    workers: workers.map((worker) => worker.summary),
    get received() {
      return received.list();
    },
    activeSequences: (workerId) => sum(workerId, (engine) => engine.unfinished),
    activeBlocks: (workerId) => sum(workerId, (engine) => engine.load().activeBlocks),
    cachedBlocks: (workerId) => sum(workerId, (engine) => engine.load().cachedBlocks),
    failNext: (failure) => faults.failNext(failure),
    dropNextConnection: () => faults.dropNextConnection(),
    close: () => (closing ??= stop()),
  };
}
