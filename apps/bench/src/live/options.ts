import { numberOption, textOption, type Progress } from "../framework.js";
import { MOONCAKE_CONVERSATION_TRACE } from "../mooncake.js";
import type { LiveOptions } from "./compare.js";
import type { EventPlane } from "./fleet.js";

/** Defaults of `npm run bench -- live` and `./run main`. */
export const LIVE_DEFAULTS = {
  model: "Qwen/Qwen3-0.6B",
  workers: 4,
  conversations: 6,
  rate: 2,
  speedupRatio: 10,
  maxOutputTokens: 96,
  eventPlane: "zmq" as EventPlane,
  blockSize: 64,
  gpuBlocks: 16_384,
};

/** The live comparison's options from the benchmark's arguments. */
export function liveOptions(args: readonly string[], root: string, progress: Progress): LiveOptions {
  const eventPlane = textOption(args, "event-plane", LIVE_DEFAULTS.eventPlane);
  if (eventPlane !== "zmq" && eventPlane !== "nats") throw new Error(`--event-plane is zmq or nats, not ${eventPlane}`);
  return {
    root,
    model: LIVE_DEFAULTS.model,
    workers: numberOption(args, "workers", LIVE_DEFAULTS.workers),
    conversations: numberOption(args, "conversations", LIVE_DEFAULTS.conversations),
    rate: numberOption(args, "rate", LIVE_DEFAULTS.rate),
    speedupRatio: numberOption(args, "speedup-ratio", LIVE_DEFAULTS.speedupRatio),
    maxOutputTokens: numberOption(args, "max-output-tokens", LIVE_DEFAULTS.maxOutputTokens),
    eventPlane,
    blockSize: numberOption(args, "block-size", LIVE_DEFAULTS.blockSize),
    gpuBlocks: numberOption(args, "gpu-blocks", LIVE_DEFAULTS.gpuBlocks),
    trace: textOption(args, "trace", MOONCAKE_CONVERSATION_TRACE),
    note: (message) => progress.note(message),
    progress: (phase, done, total) => progress.update(phase, done, total),
  };
}
