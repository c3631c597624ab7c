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
  const eppReplicas = numberOption(args, "epp-replicas", 1);
  if (!Number.isInteger(eppReplicas)) throw new Error(`--epp-replicas needs a whole number, not ${eppReplicas}`);
  const killText = textOption(args, "kill-replica-at", eppReplicas > 1 ? "0.5" : "off");
  const killReplicaAt = killText === "off" ? undefined : Number(killText);
  if (killReplicaAt !== undefined && !(killReplicaAt > 0 && killReplicaAt < 1))
    throw new Error(`--kill-replica-at is a fraction of the replay between 0 and 1, or off; not ${killText}`);
  if (killReplicaAt !== undefined && eppReplicas < 2)
    throw new Error("--kill-replica-at needs --epp-replicas 2 or more (a replica to kill, one to survive)");
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
    eppReplicas,
    killReplicaAt,
    eppCpuProfileDir: textOption(args, "epp-cpu-prof", "") || undefined,
    note: (message) => progress.note(message),
    progress: (phase, done, total) => progress.update(phase, done, total),
  };
}
