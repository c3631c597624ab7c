import { NatsWorkerRegistrar, type WorkerInfo } from "@dynamo/discovery";
import {
  KvEventBridge,
  ZmqEventPublisher,
  connectEventPlane,
  storedBatch as storedBlocks,
  type VllmEventBatch,
} from "@dynamo/kv-events";
import { freePort, type NatsServer } from "@dynamo/testkit";
import type { NatsConnection } from "@nats-io/transport-node";

export const BS = 16;
export const quiet = (): void => undefined;

/** The `BlockStored` a vLLM engine publishes after caching the full blocks of `tokens`. */
export function storedBatch(tokens: ArrayLike<number>, hashBase: bigint): VllmEventBatch {
  return storedBlocks(tokens, BS, hashBase);
}

export function prompt(seed: number, blocks = 8): Uint32Array {
  return Uint32Array.from({ length: blocks * BS }, (_, i) => seed * 100_000 + i);
}

/**
 * A worker as it runs beside a vLLM engine: the engine's ZeroMQ KV-event publisher (with replay), the
 * bridge onto the NATS event plane, and its registration in NATS discovery.
 */
export class FakeWorker {
  private constructor(
    readonly info: WorkerInfo,
    readonly zmq: ZmqEventPublisher,
    readonly nc: NatsConnection,
    private bridge: KvEventBridge | undefined,
    private registrar: NatsWorkerRegistrar | undefined,
  ) {}

  /**
   * Starts the engine side; with `bridge` its events also go onto NATS; with `register` it registers in
   * NATS discovery.
   */
  static async start(
    server: NatsServer,
    id: bigint,
    namespace: string,
    options: { bridge?: boolean; register?: boolean } = {},
  ): Promise<FakeWorker> {
    const [port, replayPort] = [await freePort(), await freePort()];
    const endpoint = `tcp://127.0.0.1:${port}`;
    const replayEndpoint = `tcp://127.0.0.1:${replayPort}`;
    const zmq = await ZmqEventPublisher.open({ endpoint, replayEndpoint, bind: true });
    const info: WorkerInfo = {
      id,
      name: `worker-${id}`,
      role: "both",
      namespace,
      component: "backend",
      httpEndpoint: `127.0.0.${Number(id % 200n) + 1}:8000`,
      rankHttpEndpoints: [`127.0.0.${Number(id % 200n) + 1}:8000`],
      dpSize: 1,
      dpStartRank: 0,
      kvEvents: { endpoints: [endpoint], replayEndpoints: [replayEndpoint] },
      blockSize: BS,
    };
    const nc = await connectEventPlane(server.url, { reconnectTimeWait: 100 });
    const bridge =
      options.bridge === false
        ? undefined
        : await KvEventBridge.start({
            nc,
            namespace,
            component: "backend",
            blockSize: BS,
            worker: { workerId: id, endpoint, replayEndpoint },
            log: quiet,
          });
    let registrar: NatsWorkerRegistrar | undefined;
    if (options.register !== false) {
      registrar = new NatsWorkerRegistrar({ connection: nc, worker: info, leaseTtlMs: 5_000 });
      await registrar.register();
    }
    return new FakeWorker(info, zmq, nc, bridge, registrar);
  }

  get id(): bigint {
    return this.info.id;
  }

  /** The engine caches `tokens`: one vLLM batch on its ZeroMQ publisher. */
  async cache(tokens: ArrayLike<number>, hashBase: bigint): Promise<void> {
    await this.zmq.publish(storedBatch(tokens, hashBase));
  }

  /** Leaves discovery (clean shutdown of the worker's registration). */
  async deregister(): Promise<void> {
    await this.registrar?.deregister();
    this.registrar = undefined;
  }

  async close(): Promise<void> {
    await this.deregister();
    await this.bridge?.close();
    this.bridge = undefined;
    await this.zmq.close();
    await this.nc.close();
  }
}
