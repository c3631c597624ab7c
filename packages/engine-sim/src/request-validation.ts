import type { EngineConfig, EngineRequest, KvTransferRole } from "./types.js";

/** A request the engine can never serve; the message says what to change. */
export class EngineRequestError extends Error {
  override readonly name = "EngineRequestError";
}

const MAX_TOKEN_ID = 2 ** 32;

/** Throws `EngineRequestError` unless the engine can serve `request` in `role`. */
export function validateRequest(
  request: EngineRequest,
  role: KvTransferRole | null,
  config: EngineConfig,
  inUse: ReadonlyMap<string, unknown>,
): void {
  const fail = (message: string): never => {
    throw new EngineRequestError(message);
  };
  if (typeof request.id !== "string" || request.id.length === 0) fail("request id must be a non-empty string");
  if (inUse.has(request.id)) fail(`request id ${JSON.stringify(request.id)} is already in use`);
  const tokens = request.tokens;
  const n = tokens?.length;
  if (typeof n !== "number" || n < 1) fail("the prompt must have at least one token");
  if (!(tokens instanceof Uint32Array)) {
    for (let i = 0; i < n; i++) {
      const t = tokens[i];
      if (!Number.isInteger(t) || t! < 0 || t! >= MAX_TOKEN_ID)
        fail(`token ${i} of the prompt is not a token id (an integer in [0, 2^32)): ${String(t)}`);
    }
  }
  if (!Number.isSafeInteger(request.maxTokens) || request.maxTokens < 1)
    fail(`maxTokens must be an integer ≥ 1, got ${String(request.maxTokens)}`);
  const total = n + (role === "send" ? 1 : request.maxTokens);
  if (total > config.maxModelLen)
    fail(
      `prompt (${n} tokens) plus output (${total - n}) exceeds the maximum model length of ${config.maxModelLen} tokens`,
    );
  if (request.priority !== undefined && !Number.isFinite(request.priority))
    fail(`priority must be a finite number, got ${String(request.priority)}`);
  if (request.loraName !== undefined && request.loraName !== null && typeof request.loraName !== "string")
    fail("loraName must be a string or null");
  const given = request.outputTokenIds;
  if (given !== undefined && given.length > 0) {
    for (let i = 0; i < given.length; i++) {
      const t = given[i];
      if (!Number.isInteger(t) || t! < 0 || t! >= MAX_TOKEN_ID)
        fail(`outputTokenIds[${i}] is not a token id: ${String(t)}`);
    }
  }
  const reserve = Math.floor(config.watermark * config.numGpuBlocks);
  const admissible = config.numGpuBlocks - reserve;
  if (!config.enableChunkedPrefill && n > config.maxNumBatchedTokens)
    fail(
      `without chunked prefill a prompt may have at most ${config.maxNumBatchedTokens} tokens (maxNumBatchedTokens), got ${n}`,
    );
  const firstBlocks = Math.ceil(
    (role === "receive" || !config.enableChunkedPrefill ? n : Math.min(n, config.maxNumBatchedTokens)) /
      config.blockSize,
  );
  if (firstBlocks > admissible)
    fail(`the prompt needs ${firstBlocks} KV blocks at admission but only ${admissible} can be allocated`);
}
