import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { EngineRequestError, type Engine, type RequestResult } from "@dynamo/engine-sim";
import { InvalidRequest, type Tokenizer } from "@dynamo/tokenizer";
import { HttpError } from "./errors.js";
import type { EngineMetrics } from "./metrics.js";
import type { ReceivedLog } from "./received.js";
import { parseGenerationRequest, transferRole, type GenerationRequest, type RequestKind } from "./request.js";
import { chunkBody, completionBody, sse, usageChunkBody, type ResponseContext } from "./responses.js";
import { tokenText } from "./text.js";

/** What serving a request on one DP rank of one worker needs. */
export interface RankContext {
  readonly workerId: bigint;
  readonly workerName: string;
  readonly rank: number;
  readonly engine: Engine;
  readonly metrics: EngineMetrics;
  /** This rank's HTTP port (`x-inference-port`, `kv_transfer_params.remote_port`). */
  readonly port: number;
  readonly servedModelName: string;
  /** LoRA adapters served besides the base model. */
  readonly loraModules: readonly string[];
  readonly tokenizer: Tokenizer;
  readonly defaultMaxTokens: number;
  readonly advertiseHost: string;
  readonly podName: string;
  readonly received: ReceivedLog;
}

/** Response headers every answer of a rank carries (llm-d-inference-sim's). */
export function inferenceHeaders(ctx: RankContext): Record<string, string> {
  return { "x-inference-pod": ctx.podName, "x-inference-port": String(ctx.port) };
}

async function promptTokens(
  ctx: RankContext,
  request: GenerationRequest,
  rawBody: string,
): Promise<{ tokens: Uint32Array; tokenizedByMocker: boolean }> {
  if (request.tokenData !== undefined) return { tokens: request.tokenData, tokenizedByMocker: false };
  try {
    const { tokenIds } = await ctx.tokenizer.tokenizeRequest(request.kind, rawBody);
    if (tokenIds.length === 0) throw new HttpError(400, "the prompt is empty: give at least one token", "prompt");
    return { tokens: tokenIds, tokenizedByMocker: !request.promptIsTokens };
  } catch (error) {
    if (error instanceof InvalidRequest) throw new HttpError(400, error.message, error.field ?? null);
    throw error;
  }
}

function maxTokensFor(ctx: RankContext, request: GenerationRequest, promptLength: number): number {
  const maxModelLen = ctx.engine.config.maxModelLen;
  const remaining = maxModelLen - promptLength;
  const maxTokens = request.maxTokens ?? Math.min(ctx.defaultMaxTokens, Math.max(remaining, 1));
  if (promptLength + maxTokens > maxModelLen)
    throw new HttpError(
      400,
      `This model's maximum context length is ${maxModelLen} tokens. However, you requested ` +
        `${promptLength + maxTokens} tokens (${promptLength} in the ${request.kind === "chat" ? "messages" : "prompt"}, ` +
        `${maxTokens} in the completion). Please reduce the length of the ${request.kind === "chat" ? "messages" : "prompt"} or completion.`,
      request.kind === "chat" ? "messages" : "prompt",
    );
  return maxTokens;
}

/**
 * Serves one chat or completions request on a rank: checks the body, takes the prompt ids
 * (`nvext.token_data` or the model's tokenizer), queues the request on the engine and answers as the
 * engine produces tokens, buffered or as SSE. A client that goes away cancels the request, which frees
 * its blocks at once (full ones stay cached).
 */
export async function serveGeneration(
  ctx: RankContext,
  kind: RequestKind,
  req: IncomingMessage,
  res: ServerResponse,
  rawBody: string,
): Promise<void> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(rawBody);
  } catch (error) {
    throw new HttpError(400, `the request body is not valid JSON: ${(error as Error).message}`);
  }
  const request = parseGenerationRequest(kind, parsed);
  const loraName = ctx.loraModules.includes(request.model) ? request.model : null;
  if (request.model !== ctx.servedModelName && loraName === null)
    throw new HttpError(404, `The model \`${request.model}\` does not exist.`, "model");
  const role = transferRole(request.kvTransferParams);
  const { tokens, tokenizedByMocker } = await promptTokens(ctx, request, rawBody);
  const maxTokens = maxTokensFor(ctx, request, tokens.length);
  ctx.received.add({
    workerId: ctx.workerId,
    dpRank: ctx.rank,
    path: req.url ?? "",
    headers: { ...req.headers },
    promptTokenIds: Array.from(tokens),
    tokenizedByMocker,
    ...(request.kvTransferParams !== undefined && { kvTransferParams: request.kvTransferParams }),
    stream: request.stream,
  });
  if (res.destroyed) return;

  const id = `${kind === "chat" ? "chatcmpl" : "cmpl"}-${randomUUID().replaceAll("-", "")}`;
  const response: ResponseContext = { kind, id, created: Math.floor(Date.now() / 1000), model: request.model };
  let text = "";
  let finished = false;
  let resolveDone!: (result: RequestResult) => void;
  const done = new Promise<RequestResult>((resolve) => (resolveDone = resolve));
  try {
    ctx.engine.addRequest({
      id,
      tokens,
      maxTokens,
      loraName,
      kvTransfer: role,
      onToken: (token) => {
        const piece = tokenText(token.tokenId, token.index);
        if (!request.stream) text += piece;
        else if (!res.destroyed) res.write(sse(chunkBody(response, { text: piece })));
      },
      onFinish: (result) => {
        finished = true;
        ctx.metrics.observe(result, maxTokens);
        resolveDone(result);
      },
    });
  } catch (error) {
    if (error instanceof EngineRequestError) throw new HttpError(400, error.message);
    throw error;
  }
  res.on("close", () => {
    if (!finished) ctx.engine.cancel(id);
  });
  if (request.stream) {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", ...inferenceHeaders(ctx) });
    if (kind === "chat") res.write(sse(chunkBody(response, { text: "", first: true })));
  }
  const result = await done;
  if (result.reason === "cancelled" || res.destroyed) return;
  const kvTransferParams =
    result.reason === "transferred"
      ? {
          do_remote_prefill: true,
          do_remote_decode: false,
          remote_block_ids: result.transferBlockIds ?? [],
          remote_engine_id: `${ctx.workerName}-dp${ctx.rank}`,
          remote_request_id: id,
          remote_host: ctx.advertiseHost,
          remote_port: ctx.port,
          tp_size: 1,
        }
      : null;
  if (!request.stream) {
    res.writeHead(200, { "content-type": "application/json", ...inferenceHeaders(ctx) });
    res.end(JSON.stringify(completionBody(response, text, result, kvTransferParams)));
    return;
  }
  res.write(sse(chunkBody(response, { text: "", finish: true })));
  if (request.includeUsage) res.write(sse(usageChunkBody(response, result)));
  res.end("data: [DONE]\n\n");
}
