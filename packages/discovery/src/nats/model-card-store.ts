import { createHash } from "node:crypto";
import type { NatsConnection } from "@nats-io/nats-core";
import { Objm, type ObjectStore } from "@nats-io/obj";
import type { ModelCard, ModelCardFileSource } from "../worker.js";
import { DEFAULT_MODEL_CARD_BUCKET } from "./names.js";

/** The object store's digest format: `SHA-256=` + padded base64url of the SHA-256. */
export function objectDigest(bytes: Uint8Array): string {
  const base64 = createHash("sha256").update(bytes).digest("base64");
  return `SHA-256=${base64.replace(/\+/g, "-").replace(/\//g, "_")}`;
}

type NatsObjectRef = Extract<ModelCardFileSource, { kind: "nats-object" }>;

/**
 * Model-card files in a JetStream object store. Objects are named `<prefix>/<file name>` (the prefix
 * is normally the model name); an upload is skipped when an object with the same digest exists, so
 * many workers of one model share one copy.
 */
export class NatsModelCardStore {
  private store: Promise<ObjectStore> | undefined;

  constructor(
    private readonly connection: NatsConnection,
    readonly bucket: string = DEFAULT_MODEL_CARD_BUCKET,
  ) {}

  /** Uploads the files and returns the card that references them. */
  async upload(prefix: string, files: Readonly<Record<string, Uint8Array>>): Promise<ModelCard> {
    const store = await this.open(true);
    const refs: Record<string, ModelCardFileSource> = {};
    for (const [fileName, bytes] of Object.entries(files)) {
      const object = `${prefix}/${fileName}`;
      const digest = objectDigest(bytes);
      const existing = await store.info(object);
      if (existing?.digest !== digest) await store.putBlob({ name: object }, bytes);
      refs[fileName] = { kind: "nats-object", bucket: this.bucket, object, digest, size: bytes.byteLength };
    }
    return { files: refs };
  }

  /** Downloads one referenced file; throws when it is missing or its digest no longer matches. */
  async download(ref: NatsObjectRef): Promise<Uint8Array> {
    if (ref.bucket !== this.bucket)
      throw new RangeError(`object ${ref.object} is in bucket ${ref.bucket}, not ${this.bucket}`);
    const store = await this.open(false);
    const bytes = await store.getBlob(ref.object);
    if (bytes === null) throw new Error(`object ${ref.bucket}/${ref.object} not found`);
    if (ref.digest !== undefined && objectDigest(bytes) !== ref.digest) {
      throw new Error(`object ${ref.bucket}/${ref.object} changed since the worker registered it (digest mismatch)`);
    }
    return bytes;
  }

  private open(create: boolean): Promise<ObjectStore> {
    if (!this.store) {
      const objm = new Objm(this.connection);
      this.store = create ? objm.create(this.bucket) : objm.open(this.bucket);
      // A failed open (bucket missing, server away) must not stick: the next call retries.
      this.store.catch(() => (this.store = undefined));
    }
    return this.store;
  }
}
