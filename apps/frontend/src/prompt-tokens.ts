import type { Logger } from "pino";
import { InvalidRequest, TokenizerRegistry, type TokenizerSource } from "@dynamo/tokenizer";
import { hasTools, type JsonObject } from "./engine-request.js";
import type { TokenSource } from "./metrics.js";
import type { RequestKind } from "./types.js";

const U32_MAX = 0xffff_ffff;

/**
 * `nvext.token_data` of a request: the ids, undefined when absent, or what is wrong with it (the
 * endpoint picker's metadata is malformed: the caller answers 502).
 */
export function tokenDataOf(nvext: JsonObject | undefined): number[] | undefined | string {
  const data = nvext?.["token_data"];
  if (data === undefined || data === null) return undefined;
  if (!Array.isArray(data) || data.length === 0) return "nvext.token_data must be a non-empty array of token ids";
  for (let i = 0; i < data.length; i++) {
    const id: unknown = data[i];
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > U32_MAX)
      return `nvext.token_data[${i}] is ${JSON.stringify(id)}, not a token id (an integer 0..${U32_MAX})`;
  }
  return data as number[];
}

/** A completion prompt that is already one list of token ids. */
function tokenPrompt(body: JsonObject): number[] | undefined {
  const prompt = body["prompt"];
  return Array.isArray(prompt) && prompt.length > 0 && prompt.every((id) => typeof id === "number")
    ? (prompt as number[])
    : undefined;
}

/** The prompt ids for the engine (undefined: the engine tokenizes), or the client error text, and where they came from. */
export interface PromptIds {
  readonly ids: readonly number[] | undefined | string;
  readonly source: TokenSource;
}

/**
 * Where the prompt's token ids come from (reference §3): the endpoint picker's `nvext.token_data`
 * verbatim; else a client's token prompt; else this sidecar's tokenizer (warning once when a worker id
 * was set without tokens: the picker should have sent them). A chat request with tools, a multi-prompt
 * batch, or no tokenizer configured leave tokenizing to the engine.
 */
export class PromptTokens {
  private registry: TokenizerRegistry | undefined;
  private warned = false;

  constructor(
    private readonly source: TokenizerSource | null,
    private readonly log: Logger,
  ) {}

  async forRequest(
    kind: RequestKind,
    body: JsonObject,
    raw: string,
    tokenData: readonly number[] | undefined,
    workerIdSet: boolean,
  ): Promise<PromptIds> {
    if (tokenData !== undefined) return { ids: tokenData, source: "epp" };
    const given = kind === "completions" ? tokenPrompt(body) : undefined;
    if (given !== undefined) return { ids: given, source: "client" };
    if (workerIdSet && !this.warned) {
      this.warned = true;
      this.log.warn(
        "a worker id was set but nvext.token_data is absent: tokenizing here (the endpoint picker should send the tokens)",
      );
    }
    if (this.source === null || (kind === "chat" && hasTools(body))) return { ids: undefined, source: "engine" };
    this.registry ??= new TokenizerRegistry({ threads: 1, defaultModel: this.source });
    try {
      const tokenizer = await this.registry.get(String(body["model"] ?? ""));
      const result = await tokenizer.tokenizeRequest(kind, raw);
      if (!result.injectable) return { ids: undefined, source: "engine" };
      return { ids: Array.from(result.tokenIds), source: "local" };
    } catch (error) {
      if (error instanceof InvalidRequest) return { ids: error.message, source: "local" };
      this.log.warn({ err: error }, "local tokenization failed: the engine tokenizes this request");
      return { ids: undefined, source: "engine" };
    }
  }

  async close(): Promise<void> {
    await this.registry?.close();
  }
}
