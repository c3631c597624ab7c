import type { NatsConnection, QueuedIterator } from "@nats-io/nats-core";
import { Kvm, type KV, type KvWatchEntry } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { fetchModelCard, type ModelCardFiles } from "../model-card.js";
import { namespaceMatches, resolveNamespacePrefix } from "../namespace.js";
import { WorkerRegistryBase } from "../registry.js";
import { formatWorkerId } from "../worker-id.js";
import type { WorkerInfo } from "../worker.js";
import { onConnectionStatus } from "./connection-status.js";
import { DEFAULT_INSTANCE_BUCKET, parseInstanceKey } from "./names.js";
import { decodeRegistration, type Registration } from "./record.js";

/** Router-side view of the NATS registry. */
export interface NatsDiscoveryOptions {
  /** An existing connection (kept open on `stop()`), or `servers` to open one. */
  connection?: NatsConnection;
  /** NATS server URL(s), e.g. `nats://127.0.0.1:4222` (`NATS_SERVER`). */
  servers?: string | string[];
  /** Dynamo namespace prefix (default: `DYN_NAMESPACE_PREFIX` > `DYN_NAMESPACE` > `vllm-agg`). */
  namespacePrefix?: string;
  /** Only this component (e.g. `backend`); all components when absent. */
  component?: string;
  /** KV bucket. Default `dynamo-instances`. */
  bucket?: string;
  /** Delay before re-watching after a failure, and between looks for a bucket that does not exist yet. Default 1000 ms. */
  retryMs?: number;
  /** How often leases are checked. Default 200 ms. */
  sweepIntervalMs?: number;
  /**
   * How often the bucket's stream is checked for having been deleted or recreated (server state lost,
   * bucket destroyed), which silently ends a watch; the watch is then restarted. Default 2000 ms.
   */
  streamCheckMs?: number;
}

/**
 * Watches the KV bucket for `<namespace>.<component>.<id>` entries. Each entry carries the lease TTL
 * its worker promised; a worker whose entry is not refreshed within that time is removed (a crashed
 * worker), a deleted entry is removed at once (a clean shutdown). After a reconnect the watch is
 * re-established and the full list re-diffed. Leases run on connected time only: an outage pauses
 * them, so a worker expires only after a full lease period of connected time without a heartbeat.
 */
export class NatsDiscovery extends WorkerRegistryBase {
  private connection: NatsConnection | undefined;
  private ownsConnection = false;
  private generation = 0;
  private iterator: QueuedIterator<KvWatchEntry> | undefined;
  /** Lease deadlines, in `clock` time. */
  private readonly leases = new Map<bigint, number>();
  private readonly clock = new ConnectedClock();
  private connected = true;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private streamCheckTimer: NodeJS.Timeout | undefined;
  /** The watched bucket and the creation time of its stream when the watch started. */
  private watched: { kv: KV; streamCreated: string } | undefined;
  private stopStatus: (() => void) | undefined;
  private readonly namespacePrefix: string;
  private readonly bucket: string;

  constructor(private readonly options: NatsDiscoveryOptions) {
    super();
    this.namespacePrefix = options.namespacePrefix ?? resolveNamespacePrefix();
    this.bucket = options.bucket ?? DEFAULT_INSTANCE_BUCKET;
    if (!options.connection && !options.servers) throw new TypeError("NatsDiscovery needs a connection or servers");
  }

  async start(): Promise<void> {
    this.stopped = false;
    if (!this.connection) {
      this.ownsConnection = !this.options.connection;
      this.connection =
        this.options.connection ??
        (await connect({ servers: this.options.servers!, maxReconnectAttempts: -1, reconnectTimeWait: 250 }));
    }
    this.stopStatus = onConnectionStatus(this.connection, (status) => {
      if (status.type === "disconnect") {
        this.connected = false;
        this.clock.pause();
      }
      if (status.type === "reconnect") {
        this.connected = true;
        this.clock.resume();
        void this.watch();
      }
    });
    this.sweepTimer = setInterval(() => this.expireLeases(), this.options.sweepIntervalMs ?? 200);
    this.sweepTimer.unref();
    this.streamCheckTimer = setInterval(() => void this.checkStream(), this.options.streamCheckMs ?? 2000);
    this.streamCheckTimer.unref();
    await this.watch();
  }

  protected async stopBackend(): Promise<void> {
    this.stopped = true;
    this.generation++;
    this.iterator?.stop();
    this.iterator = undefined;
    clearTimeout(this.retryTimer);
    clearInterval(this.sweepTimer);
    clearInterval(this.streamCheckTimer);
    this.stopStatus?.();
    if (this.ownsConnection) {
      await this.connection?.close();
      this.connection = undefined;
    }
  }

  /** Fetches the model-card files of a worker through this registry's connection. */
  async modelCardFiles(worker: WorkerInfo): Promise<ModelCardFiles> {
    if (!worker.modelCard) throw new Error(`worker ${formatWorkerId(worker.id)} has no model card`);
    if (!this.connection) throw new Error("NatsDiscovery is not started");
    return fetchModelCard(worker.modelCard, { nats: this.connection });
  }

  /** (Re)starts the watch; a newer call supersedes an older one through `generation`. */
  private async watch(): Promise<void> {
    const generation = ++this.generation;
    this.iterator?.stop();
    this.iterator = undefined;
    this.watched = undefined;
    clearTimeout(this.retryTimer);
    if (this.stopped || !this.connection) return;
    const filter = this.options.component === undefined ? ">" : `*.${this.options.component}.*`;
    try {
      const kv = await new Kvm(this.connection).open(this.bucket);
      const streamCreated = (await kv.status()).streamInfo.created;
      const iterator = await kv.watch({ key: filter });
      if (generation !== this.generation) {
        iterator.stop();
        return;
      }
      this.iterator = iterator;
      this.watched = { kv, streamCreated };
      void this.consume(kv, iterator, filter, generation);
    } catch (error) {
      if (generation !== this.generation) return;
      if (isStreamNotFound(error)) {
        // No worker has registered yet: that is a complete, empty list. Once ready, a vanished bucket
        // (server state lost) changes nothing: workers re-register or their leases run out.
        if (!this.ready) this.applyReplay(new Map());
      } else {
        this.reportProblem({
          source: `nats:${this.bucket}`,
          message: `watch failed (retrying): ${(error as Error).message}`,
          cause: error,
        });
      }
      this.scheduleRetry(generation);
    }
  }

  private async consume(
    kv: KV,
    iterator: QueuedIterator<KvWatchEntry>,
    filter: string,
    generation: number,
  ): Promise<void> {
    const initial = new Map<bigint, Registration | "deleted">();
    let initialDone = false;
    const finishInitial = (): void => {
      if (initialDone || generation !== this.generation) return;
      initialDone = true;
      this.applyReplay(initial);
    };
    // An empty bucket replays nothing, so the end of the initial replay is never signalled.
    void this.hasNoKeys(kv, filter).then((empty) => empty && finishInitial());
    try {
      for await (const entry of iterator) {
        if (generation !== this.generation) break;
        const decoded = this.decode(entry);
        if (!initialDone) {
          if (decoded) initial.set(decoded.id, decoded.registration ?? "deleted");
          if (entry.isUpdate) finishInitial();
        } else if (decoded?.registration) {
          this.upsertWorker(decoded.registration.worker);
          this.leases.set(decoded.id, this.clock.now() + decoded.registration.leaseTtlMs);
        } else if (decoded) {
          this.removeWorkerById(decoded.id);
          this.leases.delete(decoded.id);
        }
      }
    } catch (error) {
      if (generation === this.generation) {
        this.reportProblem({
          source: `nats:${this.bucket}`,
          message: `watch ended: ${(error as Error).message}`,
          cause: error,
        });
      }
    }
    if (generation === this.generation) this.scheduleRetry(generation);
  }

  private async checkStream(): Promise<void> {
    const watched = this.watched;
    if (!watched || !this.connected) return;
    let created: string | undefined;
    try {
      created = (await watched.kv.status()).streamInfo.created;
    } catch (error) {
      if (!isStreamNotFound(error)) return; // transient; the next check retries
    }
    if (this.watched === watched && created !== watched.streamCreated) void this.watch();
  }

  private async hasNoKeys(kv: KV, filter: string): Promise<boolean> {
    try {
      for await (const _key of await kv.keys(filter)) return false;
      return true;
    } catch {
      return false;
    }
  }

  /**
   * The worker id an entry is about, with its registration when it is a valid PUT for our namespace;
   * `undefined` for entries to ignore (other namespaces, malformed entries, which are reported).
   */
  private decode(entry: KvWatchEntry): { id: bigint; registration?: Registration } | undefined {
    const key = parseInstanceKey(entry.key);
    const source = `nats:${this.bucket}/${entry.key}`;
    if (!key) {
      this.reportProblem({ source, message: "key is not <namespace>.<component>.<decimal id>; ignored" });
      return undefined;
    }
    if (!namespaceMatches(this.namespacePrefix, key.namespace)) return undefined;
    if (entry.operation !== "PUT") return { id: key.id };
    const registration = decodeRegistration(entry.value);
    if ("error" in registration) {
      this.reportProblem({ source, message: `invalid entry ignored: ${registration.error}` });
      return undefined;
    }
    const { worker } = registration;
    if (worker.id !== key.id || worker.namespace !== key.namespace || worker.component !== key.component) {
      this.reportProblem({ source, message: "entry does not match its key (id, namespace or component); ignored" });
      return undefined;
    }
    return { id: key.id, registration };
  }

  /**
   * Applies the replay at the start of a watch. Replayed entries are current (fresh leases); deleted
   * entries remove their worker; a known worker the replay does not mention at all (its entry expired
   * on the server, or the bucket was lost) keeps its lease and stays until that runs out, so a restart
   * of the watch does not make workers flap.
   */
  private applyReplay(replay: ReadonlyMap<bigint, Registration | "deleted">): void {
    const now = this.clock.now();
    const workers: WorkerInfo[] = [];
    for (const worker of this.list()) {
      if (!replay.has(worker.id) && this.leases.has(worker.id)) workers.push(worker);
    }
    for (const [id, entry] of replay) {
      if (entry === "deleted") {
        this.leases.delete(id);
        continue;
      }
      this.leases.set(id, now + entry.leaseTtlMs);
      workers.push(entry.worker);
    }
    this.applyFullList(workers, `nats:${this.bucket}`);
  }

  private expireLeases(): void {
    const now = this.clock.now();
    for (const [id, deadline] of this.leases) {
      if (deadline > now) continue;
      this.leases.delete(id);
      this.removeWorkerById(id);
    }
  }

  private scheduleRetry(generation: number): void {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (generation === this.generation) void this.watch();
    }, this.options.retryMs ?? 1000);
  }
}

/**
 * Milliseconds of connected time. It stands still while the connection is down, so a lease measured
 * on it only runs while the watcher could have received the heartbeats that renew it.
 */
class ConnectedClock {
  private elapsed = 0;
  private runningSince: number | undefined = performance.now();

  now(): number {
    return this.runningSince === undefined ? this.elapsed : this.elapsed + performance.now() - this.runningSince;
  }

  pause(): void {
    if (this.runningSince === undefined) return;
    this.elapsed += performance.now() - this.runningSince;
    this.runningSince = undefined;
  }

  resume(): void {
    this.runningSince ??= performance.now();
  }
}

function isStreamNotFound(error: unknown): boolean {
  return /stream not found/i.test((error as Error).message);
}
