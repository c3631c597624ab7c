import { stat } from "node:fs/promises";
import { isAbsolute, join, relative, resolve } from "node:path";
import type { EncoderPreference } from "./types.js";
import { UnknownModel } from "./errors.js";
import { TOKENIZER_FILE_NAMES } from "./model-files.js";
import {
  ModelTokenizer,
  type EncodeOptions,
  type RequestKind,
  type TokenizeOptions,
  type TokenizeResult,
  type TokenizerInfo,
} from "./model-tokenizer.js";
import { TokenizerPool, type TokenizerPoolOptions } from "./pool.js";
import { shareFileTexts, unshareFileTexts, type WireModel } from "./pool-protocol.js";
import { readTokenizerSource, type TokenizerSource } from "./sources.js";

/** Registration name of the default model. */
export const DEFAULT_MODEL = "default";

/** Names not found under `modelsDirectory` that are remembered (least recently requested forgotten first). */
export const REMEMBERED_MISSING_MODELS = 1024;

export interface TokenizerRegistryOptions extends TokenizerPoolOptions {
  /**
   * The tokenizer for model names nothing else matches. Default: the embedded Qwen3 tokenizer;
   * `null` makes unknown names fail with `UnknownModel`.
   */
  readonly defaultModel?: TokenizerSource | null;
  /** A directory of model directories: model `org/name` is looked up in `<modelsDirectory>/org/name/`. */
  readonly modelsDirectory?: string;
  /**
   * How long a name found missing under `modelsDirectory` is served by the default model before its
   * directory is looked up again (default 10 000 ms), so a model directory added later is found.
   */
  readonly missingModelRecheckMs?: number;
  /** Encoder choice; `auto` (default) takes the exact byte-level BPE fast path when the model allows it. */
  readonly encoder?: EncoderPreference;
  /** Load a model in every worker as soon as it is first requested (default true), not on first use. */
  readonly loadInEveryWorker?: boolean;
}

/**
 * One model's tokenizer. Asynchronous methods run on the registry's worker pool and never block the
 * caller's event loop; synchronous ones run on the calling thread and suit small inputs (the first
 * synchronous call loads the model on the calling thread, which takes a while for large vocabularies:
 * call `prepareSync()` at startup to pay that early).
 */
export class Tokenizer {
  private local: ModelTokenizer | undefined;

  constructor(
    /** The name the tokenizer was registered or found under (`default` for the default model). */
    readonly model: string,
    readonly info: TokenizerInfo,
    private readonly wire: WireModel,
    private readonly pool: TokenizerPool,
  ) {}

  /** Token ids of an OpenAI chat completions (`chat`) or completions (`completions`) request body. */
  tokenizeRequest(kind: RequestKind, body: unknown, options: TokenizeOptions = {}): Promise<TokenizeResult> {
    return this.pool.run({ op: "tokenize", model: this.wire, kind, body, returnPrompt: options.returnPrompt === true });
  }

  tokenizeRequestSync(kind: RequestKind, body: unknown, options: TokenizeOptions = {}): TokenizeResult {
    return this.prepareSync().tokenizeRequest(kind, body, options);
  }

  encode(text: string, options: EncodeOptions = {}): Promise<Uint32Array> {
    return this.pool.run({ op: "encode", model: this.wire, text, addSpecialTokens: options.addSpecialTokens === true });
  }

  encodeSync(text: string, options: EncodeOptions = {}): Uint32Array {
    return this.prepareSync().encode(text, options);
  }

  /** The prompt text the chat template renders for a chat completions body (on the calling thread). */
  renderChat(body: unknown): string {
    return this.prepareSync().renderChat(body);
  }

  /** Loads the model on the calling thread for the synchronous methods (done once). */
  prepareSync(): ModelTokenizer {
    this.local ??= new ModelTokenizer(unshareFileTexts(this.wire.files), this.wire.encoder);
    return this.local;
  }
}

/**
 * Model name → tokenizer. Sources are registered by name (a directory, an embedded model, files in
 * memory), found under `modelsDirectory`, or fall back to the default model. Owns the worker pool.
 */
export class TokenizerRegistry {
  private readonly pool: TokenizerPool;
  private readonly sources = new Map<string, TokenizerSource>();
  private readonly loaded = new Map<string, Promise<Tokenizer>>();
  /**
   * Names looked up under `modelsDirectory` and not found, or still being looked up, in least recently
   * requested order: whether the directory holds a tokenizer, and until when that answer stands.
   * Names that are found become sources; this map holds at most `REMEMBERED_MISSING_MODELS` others.
   */
  private readonly lookups = new Map<string, { readonly found: Promise<boolean>; until: number }>();
  private nextKey = 0;

  constructor(private readonly options: TokenizerRegistryOptions = {}) {
    this.pool = new TokenizerPool(options);
    const defaultModel = options.defaultModel === undefined ? { embedded: "qwen3" as const } : options.defaultModel;
    if (defaultModel !== null) this.sources.set(DEFAULT_MODEL, defaultModel);
  }

  /** Worker threads in the pool. */
  get threads(): number {
    return this.pool.threads;
  }

  /** Registers (or replaces) the tokenizer of a model name; the next `get` loads it. */
  register(model: string, source: TokenizerSource): void {
    this.sources.set(model, source);
    this.loaded.delete(model);
    this.lookups.delete(model);
  }

  /** The tokenizer for a model name, loading it on first use. Load failures reject with `TokenizerLoadError`. */
  async get(model: string): Promise<Tokenizer> {
    const name = this.sources.has(model) ? model : await this.resolveName(model);
    let tokenizer = this.loaded.get(name);
    if (tokenizer === undefined) {
      tokenizer = this.load(name);
      this.loaded.set(name, tokenizer);
      const registered = name;
      tokenizer.catch(() => {
        if (this.loaded.get(registered) === tokenizer) this.loaded.delete(registered);
      });
    }
    return tokenizer;
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  /** Registration name for a model name that is not registered (yet): its directory, else the default. */
  private async resolveName(model: string): Promise<string> {
    const directory = this.modelDirectory(model);
    if (directory !== undefined && (await this.hasTokenizer(model, directory))) {
      if (!this.sources.has(model)) this.sources.set(model, { directory });
      return model;
    }
    if (this.sources.has(model)) return model; // registered while the directory was looked up
    if (this.sources.has(DEFAULT_MODEL)) return DEFAULT_MODEL;
    throw new UnknownModel(model);
  }

  /** Whether the model's directory holds a tokenizer.json, looked up once per name and recheck interval. */
  private hasTokenizer(model: string, directory: string): Promise<boolean> {
    const now = performance.now();
    const remembered = this.lookups.get(model);
    if (remembered !== undefined) {
      this.lookups.delete(model);
      if (now < remembered.until) {
        this.lookups.set(model, remembered); // most recently requested last
        return remembered.found;
      }
    }
    const lookup = { found: isFile(join(directory, TOKENIZER_FILE_NAMES.tokenizer)), until: Number.POSITIVE_INFINITY };
    this.lookups.set(model, lookup);
    if (this.lookups.size > REMEMBERED_MISSING_MODELS) this.lookups.delete(this.lookups.keys().next().value!);
    void lookup.found.then((found) => {
      if (found) {
        if (this.lookups.get(model) === lookup) this.lookups.delete(model);
      } else {
        lookup.until = performance.now() + (this.options.missingModelRecheckMs ?? 10_000);
      }
    });
    return lookup.found;
  }

  private async load(name: string): Promise<Tokenizer> {
    const source = this.sources.get(name)!;
    const wire: WireModel = {
      key: String(this.nextKey++),
      files: shareFileTexts(await readTokenizerSource(source)),
      encoder: this.options.encoder ?? "auto",
    };
    const task = { op: "load", model: wire } as const;
    const [info] =
      this.options.loadInEveryWorker === false
        ? [await this.pool.run<TokenizerInfo>(task)]
        : await this.pool.broadcast<TokenizerInfo>(task);
    return new Tokenizer(name, info!, wire, this.pool);
  }

  /**
   * `<modelsDirectory>/<model>` for a model name made of plain path segments (no empty, `.` or `..`
   * segment, no backslash), so that every spelling of a directory is one name and none escapes the root.
   */
  private modelDirectory(model: string): string | undefined {
    const root = this.options.modelsDirectory;
    if (root === undefined || model.length === 0 || model.includes("\\")) return undefined;
    const segments = model.split("/");
    if (segments.some((segment) => segment === "" || segment === "." || segment === "..")) return undefined;
    const directory = resolve(root, ...segments);
    const inside = relative(resolve(root), directory);
    if (inside === "" || inside.startsWith("..") || isAbsolute(inside)) return undefined;
    return directory;
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}
