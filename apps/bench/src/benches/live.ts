import { numberOption, textOption, type Bench, type Progress } from "../framework.js";
import { LIVE_DEFAULTS, runLive, type LiveOptions } from "../live/compare.js";
import { comparisonLines, comparisonResult } from "../live/present.js";

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
    trace: textOption(args, "trace", "apps/bench/data/mooncake_conversation_trace.jsonl"),
    note: (message) => progress.note(message),
    progress: (phase, done, total) => progress.update(phase, done, total),
  };
}

export const bench: Bench = {
  name: "live",
  description:
    "The live end-to-end comparison: real processes on loopback (the mocker's simulated vLLM workers publishing KV events over ZeroMQ, a frontend sidecar per worker, the endpoint picker over static discovery, the dev gateway), a slice of the Mooncake conversation trace replayed through the gateway with the `openai` client at a fixed rate, once with the picker in KV mode and once with `DYN_ROUTER_MODE=round-robin`, fresh processes (cold caches) for each. Options: `--workers 4 --conversations 8 --rate 1.5 --speedup-ratio 4 --max-output-tokens 96 --event-plane zmq|nats --block-size 64 --gpu-blocks 16384 --trace <file>`.",
  async run(ctx) {
    const options = liveOptions(ctx.args, ctx.root, ctx.progress);
    const comparison = await runLive(options);
    if (!ctx.json) for (const line of comparisonLines(comparison)) console.log(line);
    return comparisonResult(comparison, options);
  },
};
