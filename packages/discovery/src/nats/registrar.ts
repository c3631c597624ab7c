import type { NatsConnection } from "@nats-io/nats-core";
import { Kvm, type KV } from "@nats-io/kv";
import type { DiscoveryProblem } from "../registry.js";
import { readLocalModelCardFiles } from "../model-card.js";
import type { ModelCard, WorkerInfo } from "../worker.js";
import { onConnectionStatus } from "./connection-status.js";
import { NatsModelCardStore } from "./model-card-store.js";
import { DEFAULT_INSTANCE_BUCKET, instanceKey } from "./names.js";
import { encodeRegistration } from "./record.js";

/** Worker-side registration in the NATS registry. */
export interface NatsRegistrarOptions {
  /** The worker's connection (reconnecting; the registrar re-registers after a reconnect). */
  connection: NatsConnection;
  /** What to register; `namespace` and `component` must be set (they form the key). */
  worker: WorkerInfo;
  /** How long the entry stays valid without a heartbeat. Default 10 000 ms. */
  leaseTtlMs?: number;
  /** Heartbeat period. Default a third of the lease TTL. */
  heartbeatMs?: number;
  /** KV bucket. Default `dynamo-instances`. */
  bucket?: string;
  /** Object-store bucket for model-card files. Default `dynamo-model-cards`. */
  modelCardBucket?: string;
  /** Heartbeat failures (the registrar keeps retrying). */
  onProblem?: (problem: DiscoveryProblem) => void;
}

/**
 * Registers one worker: uploads its model-card files (in-memory bytes or local paths) to the object
 * store, writes `<namespace>.<component>.<id>` into the KV bucket (created with the lease TTL as its
 * max age), and rewrites it every heartbeat. A worker that crashes stops heartbeating and drops out of
 * every watcher once its lease runs out. After a reconnect (or a failed write, e.g. because the server
 * lost its state) buckets, files and entry are written again.
 */
export class NatsWorkerRegistrar {
  readonly key: string;
  private readonly leaseTtlMs: number;
  private readonly heartbeatMs: number;
  private kv: KV | undefined;
  private published: WorkerInfo | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private stopStatus: (() => void) | undefined;
  /** The current heartbeat attempt; a newer one supersedes it (see `beat`). */
  private inFlight: Promise<void> | undefined;
  private attempt = 0;
  /** Every attempt not settled yet, superseded ones included, so `deregister` can wait for them. */
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly options: NatsRegistrarOptions) {
    this.key = instanceKey(options.worker.namespace, options.worker.component, options.worker.id);
    this.leaseTtlMs = options.leaseTtlMs ?? 10_000;
    this.heartbeatMs = options.heartbeatMs ?? Math.max(1, Math.floor(this.leaseTtlMs / 3));
    if (this.heartbeatMs >= this.leaseTtlMs) throw new RangeError("heartbeatMs must be shorter than leaseTtlMs");
  }

  /** Registers now (throws if that fails), then keeps the entry alive until `deregister()`. */
  async register(): Promise<void> {
    await this.publish();
    this.heartbeat = setInterval(() => void this.beat(), this.heartbeatMs);
    this.stopStatus = onConnectionStatus(this.options.connection, (status) => {
      if (status.type !== "reconnect") return;
      // A heartbeat sent during the outage may wait for its reply until the request times out, which
      // can be longer than the lease: register again at once instead of waiting for it.
      this.kv = undefined;
      this.published = undefined;
      void this.beat(true);
    });
  }

  /** Stops heartbeating and deletes the entry so watchers drop the worker at once. */
  async deregister(): Promise<void> {
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    this.stopStatus?.();
    this.stopStatus = undefined;
    this.attempt++;
    await Promise.all([...this.pending]);
    if (this.kv) await this.kv.delete(this.key);
  }

  /** One heartbeat; joins the one in flight unless `supersede` starts a new one whose outcome counts instead. */
  private beat(supersede = false): Promise<void> {
    if (this.inFlight && !supersede) return this.inFlight;
    const attempt = ++this.attempt;
    const run = this.publish()
      .catch((error: unknown) => {
        if (attempt !== this.attempt) return;
        this.kv = undefined;
        this.published = undefined;
        this.options.onProblem?.({
          source: `nats:${this.options.bucket ?? DEFAULT_INSTANCE_BUCKET}/${this.key}`,
          message: `heartbeat failed (retrying): ${(error as Error).message}`,
          cause: error,
        });
      })
      .finally(() => {
        this.pending.delete(run);
        if (attempt === this.attempt) this.inFlight = undefined;
      });
    this.pending.add(run);
    this.inFlight = run;
    return run;
  }

  private async publish(): Promise<void> {
    const { connection } = this.options;
    this.kv ??= await new Kvm(connection).create(this.options.bucket ?? DEFAULT_INSTANCE_BUCKET, {
      history: 1,
      ttl: this.leaseTtlMs,
    });
    this.published ??= await this.withUploadedCard();
    await this.kv.put(this.key, encodeRegistration({ worker: this.published, leaseTtlMs: this.leaseTtlMs }));
  }

  private async withUploadedCard(): Promise<WorkerInfo> {
    const { worker } = this.options;
    if (!worker.modelCard) return worker;
    const { local, remote } = await readLocalModelCardFiles(worker.modelCard);
    const store = new NatsModelCardStore(this.options.connection, this.options.modelCardBucket);
    const uploaded = await store.upload(worker.modelName ?? worker.name, local);
    const modelCard: ModelCard = { files: { ...remote, ...uploaded.files } };
    return { ...worker, modelCard };
  }
}
