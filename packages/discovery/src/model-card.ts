import { readFile } from "node:fs/promises";
import type { NatsConnection } from "@nats-io/nats-core";
import { NatsModelCardStore } from "./nats/model-card-store.js";
import {
  OPTIONAL_MODEL_CARD_FILES,
  REQUIRED_MODEL_CARD_FILES,
  type ModelCard,
  type ModelCardFileSource,
} from "./worker.js";

/** Model-card files as bytes, by file name. */
export type ModelCardFiles = Record<string, Uint8Array>;

/** Where `fetchModelCard` may fetch from. */
export interface ModelCardFetchOptions {
  /** Needed for `nats-object` sources. */
  nats?: NatsConnection;
  /** HTTP fetch for `url` sources (default: the global `fetch`). */
  fetch?: typeof fetch;
}

class MissingFileError extends Error {}

/**
 * Resolves every file of a model card to bytes. Optional files (`chat_template.jinja`,
 * `generation_config.json`) that do not exist are left out; a missing required file
 * (`tokenizer.json`, `tokenizer_config.json`) is an error naming it.
 */
export async function fetchModelCard(card: ModelCard, options: ModelCardFetchOptions = {}): Promise<ModelCardFiles> {
  const stores = new Map<string, NatsModelCardStore>();
  const files: ModelCardFiles = {};
  for (const name of REQUIRED_MODEL_CARD_FILES) {
    if (!(name in card.files)) throw new Error(`model card has no ${name}`);
  }
  for (const [name, source] of Object.entries(card.files)) {
    const bytes = await fetchNamedFile(name, source, options, stores);
    if (bytes) files[name] = bytes;
  }
  return files;
}

/**
 * Splits a card into the files held locally (bytes, or paths read now; missing optional files are left
 * out) and the sources that live elsewhere (URLs, object-store references).
 */
export async function readLocalModelCardFiles(
  card: ModelCard,
): Promise<{ local: ModelCardFiles; remote: Record<string, ModelCardFileSource> }> {
  const local: ModelCardFiles = {};
  const remote: Record<string, ModelCardFileSource> = {};
  for (const [name, source] of Object.entries(card.files)) {
    if (source.kind === "url" || source.kind === "nats-object") remote[name] = source;
    else {
      const bytes = await fetchNamedFile(name, source, {}, new Map());
      if (bytes) local[name] = bytes;
    }
  }
  return { local, remote };
}

/** One file's bytes; `undefined` for an optional file that does not exist. */
async function fetchNamedFile(
  name: string,
  source: ModelCardFileSource,
  options: ModelCardFetchOptions,
  stores: Map<string, NatsModelCardStore>,
): Promise<Uint8Array | undefined> {
  try {
    return await fetchFile(source, options, stores);
  } catch (error) {
    const optional = (OPTIONAL_MODEL_CARD_FILES as readonly string[]).includes(name);
    if (optional && error instanceof MissingFileError) return undefined;
    throw new Error(`model card file ${name}: ${(error as Error).message}`, { cause: error });
  }
}

async function fetchFile(
  source: ModelCardFileSource,
  options: ModelCardFetchOptions,
  stores: Map<string, NatsModelCardStore>,
): Promise<Uint8Array> {
  switch (source.kind) {
    case "bytes":
      return source.bytes;
    case "path":
      try {
        return new Uint8Array(await readFile(source.path));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT")
          throw new MissingFileError(`${source.path} does not exist`);
        throw error;
      }
    case "url": {
      const response = await (options.fetch ?? fetch)(source.url);
      if (response.status === 404) throw new MissingFileError(`${source.url} returned 404`);
      if (!response.ok) throw new Error(`${source.url} returned ${response.status}`);
      return new Uint8Array(await response.arrayBuffer());
    }
    case "nats-object": {
      if (!options.nats) throw new Error(`object ${source.bucket}/${source.object} needs a NATS connection`);
      let store = stores.get(source.bucket);
      if (!store) stores.set(source.bucket, (store = new NatsModelCardStore(options.nats, source.bucket)));
      return store.download(source);
    }
  }
}
