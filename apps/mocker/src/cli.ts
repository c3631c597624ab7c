import { parseArgs } from "node:util";
import type { MockerOptions } from "./types.js";

/** A command line the mocker cannot run with; the message names the flag. */
export class CliError extends Error {
  override readonly name = "CliError";
}

type FlagKind = "string" | "int" | "number" | "ports" | "boolean";

interface Flag {
  readonly kind: FlagKind;
  readonly option: keyof MockerOptions | "help";
  readonly help: string;
  readonly choices?: readonly string[];
}

/** Every flag, named like Dynamo's mocker and vLLM where they have one. */
export const FLAGS: Readonly<Record<string, Flag>> = {
  "model-path": {
    kind: "string",
    option: "model",
    help: "model name (tokenizer shipped: Qwen3, Llama 3) or a tokenizer directory [Qwen/Qwen3-0.6B]",
  },
  "served-model-name": { kind: "string", option: "servedModelName", help: "name requests must use [the model path]" },
  "lora-modules": {
    kind: "string",
    option: "loraModules",
    help: "LoRA adapter names served besides the model (comma-separated) [none]",
  },
  "max-loras": { kind: "int", option: "maxLoras", help: "adapters per engine step [1]" },
  host: { kind: "string", option: "host", help: "HTTP listen address [0.0.0.0]" },
  port: {
    kind: "int",
    option: "port",
    help: "HTTP port of worker 0 rank 0; worker w rank r: port + w × dp + r; 0 = free ports [8000]",
  },
  "num-workers": { kind: "int", option: "numWorkers", help: "simulated workers in this process [1]" },
  "data-parallel-size": { kind: "int", option: "dataParallelSize", help: "DP ranks per worker [1]" },
  "block-size": { kind: "int", option: "blockSize", help: "tokens per KV block [64]" },
  "num-gpu-blocks-override": { kind: "int", option: "numGpuBlocks", help: "KV capacity in blocks per rank [16384]" },
  "max-num-seqs": { kind: "int", option: "maxNumSeqs", help: "running-request cap [256]" },
  "max-num-batched-tokens": { kind: "int", option: "maxNumBatchedTokens", help: "token budget per step [8192]" },
  "max-model-len": { kind: "int", option: "maxModelLen", help: "longest prompt + output [blocks × block size]" },
  "speedup-ratio": {
    kind: "number",
    option: "speedupRatio",
    help: "divides every modelled duration; 0 = no delays [1.0]",
  },
  "decode-speedup-ratio": { kind: "number", option: "decodeSpeedupRatio", help: "further divides decode steps [1.0]" },
  "no-enable-prefix-caching": {
    kind: "boolean",
    option: "enablePrefixCaching",
    help: "turn prefix reuse and KV events off",
  },
  "preemption-mode": {
    kind: "string",
    option: "preemptionMode",
    help: "lifo | fifo [lifo]",
    choices: ["lifo", "fifo"],
  },
  eviction: { kind: "string", option: "eviction", help: "lineage | lru [lineage]", choices: ["lineage", "lru"] },
  "disaggregation-mode": {
    kind: "string",
    option: "disaggregationMode",
    help: "agg | prefill | decode [agg]",
    choices: ["agg", "prefill", "decode"],
  },
  "kv-transfer-bandwidth": { kind: "number", option: "kvTransferBandwidth", help: "KV transfer GB/s [64]" },
  "kv-bytes-per-token": { kind: "int", option: "kvBytesPerToken", help: "KV bytes per token [131072]" },
  "default-max-tokens": { kind: "int", option: "defaultMaxTokens", help: "max_tokens of requests that give none [16]" },
  "zmq-kv-events-ports": {
    kind: "ports",
    option: "zmqKvEventsPorts",
    help: "ZeroMQ PUB base port per worker, comma-separated (+ DP rank) [none]",
  },
  "zmq-replay-ports": {
    kind: "ports",
    option: "zmqReplayPorts",
    help: "ZeroMQ ROUTER replay base port per worker (+ DP rank) [none]",
  },
  "kv-events-encoding": {
    kind: "string",
    option: "kvEventsEncoding",
    help: "array | map event encoding [array]",
    choices: ["array", "map"],
  },
  "advertise-host": {
    kind: "string",
    option: "advertiseHost",
    help: "address announced in topics and discovery [$POD_IP or 127.0.0.1]",
  },
  "discovery-file": {
    kind: "string",
    option: "discoveryFile",
    help: "write the workers to this static discovery file [none]",
  },
  "nats-server": {
    kind: "string",
    option: "natsServers",
    help: "register the workers in NATS discovery (comma-separated URLs) [none]",
  },
  namespace: { kind: "string", option: "namespace", help: "Dynamo namespace of the registration [vllm-agg]" },
  component: { kind: "string", option: "component", help: "Dynamo component of the registration [backend]" },
  help: { kind: "boolean", option: "help", help: "print this help" },
};

export function usage(): string {
  const lines = Object.entries(FLAGS).map(([name, flag]) => {
    const value =
      flag.kind === "boolean"
        ? ""
        : flag.kind === "ports"
          ? " <ports>"
          : ` <${flag.kind === "string" ? "value" : "n"}>`;
    return `  --${`${name}${value}`.padEnd(36)} ${flag.help}`;
  });
  return [
    "Usage: mocker [options]",
    "",
    "A vLLM-compatible worker over a simulated engine (no GPU).",
    "",
    ...lines,
    "",
  ].join("\n");
}

function number(name: string, text: string, integer: boolean): number {
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value) || (integer && !Number.isSafeInteger(value)))
    throw new CliError(`--${name} must be ${integer ? "an integer" : "a number"}, got ${JSON.stringify(text)}`);
  return value;
}

/** Parses the command line into options (CLI defaults: host 0.0.0.0, port 8000); `help` when asked for. */
export function parseCli(argv: readonly string[]): { help: true } | { help: false; options: MockerOptions } {
  const spec = Object.fromEntries(
    Object.entries(FLAGS).map(([name, flag]) => [
      name,
      { type: flag.kind === "boolean" ? ("boolean" as const) : ("string" as const) },
    ]),
  );
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: spec, strict: true, allowPositionals: false });
  } catch (error) {
    throw new CliError(`${(error as Error).message} (see --help)`);
  }
  if (parsed.values["help"] === true) return { help: true };
  const options: Record<string, unknown> = { host: "0.0.0.0", port: 8000 };
  for (const [name, value] of Object.entries(parsed.values)) {
    const flag = FLAGS[name]!;
    if (typeof value === "boolean") {
      options[flag.option] = name.startsWith("no-") ? !value : value;
      continue;
    }
    const text = value as string;
    if (flag.choices !== undefined && !flag.choices.includes(text))
      throw new CliError(`--${name} must be one of ${flag.choices.join(", ")}, got ${JSON.stringify(text)}`);
    if (flag.kind === "int" || flag.kind === "number") options[flag.option] = number(name, text, flag.kind === "int");
    else if (flag.kind === "ports")
      options[flag.option] = text.split(",").map((part) => {
        const port = number(name, part, true);
        if (port < 1 || port > 65535) throw new CliError(`--${name}: ${port} is not a TCP port (1-65535)`);
        return port;
      });
    else if (flag.option === "natsServers" || flag.option === "loraModules")
      options[flag.option] = text.split(",").filter((item) => item !== "");
    else options[flag.option] = text;
  }
  return { help: false, options: options as MockerOptions };
}
