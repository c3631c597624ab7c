import { pino } from "pino";
import { startMocker, type MockerHandle, type MockerOptions } from "@dynamo/mocker";
import { Frontend, frontendConfig } from "../src/index.js";

export const MODEL = "Qwen/Qwen3-0.6B";
export const BLOCK = 16;

/** A mocker with the test defaults (the sample model, 16-token blocks, no modelled delays unless given). */
export function mocker(options: MockerOptions = {}): Promise<MockerHandle> {
  return startMocker({ model: MODEL, blockSize: BLOCK, speedupRatio: 0, log: () => undefined, ...options });
}

/** A frontend on a free loopback port in front of `engine` (its first worker), logging nothing. */
export async function frontendFor(engine: MockerHandle, ...flags: string[]): Promise<Frontend> {
  const config = frontendConfig(
    [
      "--host=127.0.0.1",
      "--port=0",
      `--engine-url=${engine.url}`,
      `--worker-id=${engine.workers[0]!.id}`,
      "--log-level=silent",
      ...flags,
    ],
    {},
  );
  return Frontend.start(config, pino({ level: "silent" }));
}

/** The endpoint picker's aggregated headers for a worker. */
export function eppHeaders(workerId: bigint, dpRank = 0): Record<string, string> {
  return {
    "x-dynamo-worker-instance-id": String(workerId),
    "x-worker-instance-id": String(workerId),
    "x-dynamo-dp-rank": String(dpRank),
    "x-dynamo-routing-mode": "aggregated",
  };
}

/** A request body with the endpoint picker's body mutation (`nvext.token_data`), typed as the body. */
export function withTokens<T extends object>(body: T, tokens: readonly number[]): T {
  return { ...body, nvext: { token_data: tokens } };
}
