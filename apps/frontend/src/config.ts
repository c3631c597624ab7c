import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { parseWorkerId, podWorkerId } from "@dynamo/discovery";
import type { TokenizerSource } from "@dynamo/tokenizer";

/** Everything the sidecar runs with. */
export interface FrontendConfig {
  /** Interface to listen on (`--host`, `DYN_HTTP_HOST`; default 0.0.0.0). */
  readonly host: string;
  /** OpenAI HTTP port (`--port`, `DYN_HTTP_PORT`; default 8000; 0 picks a free port). */
  readonly port: number;
  /** The engine beside it (`--engine-url`, `DYN_ENGINE_URL`; default http://127.0.0.1:8001); DP rank r listens on its port + r. */
  readonly engineUrl: URL;
  /** The worker id of that engine: `--worker-id`, else the hash of `POD_NAME` (discovery's pod id), else of the host name. */
  readonly workerId: bigint;
  /** Where `workerId` came from, for the start log. */
  readonly workerIdSource: string;
  /** DP ranks of the engine (`--data-parallel-size`, `DYN_DATA_PARALLEL_SIZE`; default 1). */
  readonly dataParallelSize: number;
  /** A failed prefill is an error (503) instead of a local aggregated decode (`--enforce-disagg`, `DYN_ENFORCE_DISAGG`). */
  readonly enforceDisagg: boolean;
  /** Tokenizer for requests that arrive without the endpoint picker's tokens (`--tokenizer`: `qwen3`, `llama3`, a directory, or `none`: the engine tokenizes). */
  readonly tokenizer: TokenizerSource | null;
  /** Largest request body accepted (`--max-body-bytes`; default 64 MiB): larger ones get 413. */
  readonly maxBodyBytes: number;
  /** pino level (`--log-level`, `DYN_LOG`; default info). */
  readonly logLevel: string;
}

/** A configuration the sidecar cannot start with; the message names each flag or variable. */
export class FrontendConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid frontend configuration:\n  ${problems.join("\n  ")}`);
    this.name = "FrontendConfigError";
  }
}

export const USAGE = `usage: dynamo-frontend [options]

The direct-mode frontend sidecar: OpenAI HTTP in front of one engine, executing the endpoint picker's
routing decision (its worker id headers and nvext.token_data), with prefill→decode for disaggregated requests.

  --port <n>                 OpenAI HTTP port (DYN_HTTP_PORT, default 8000)
  --host <addr>              listen address (DYN_HTTP_HOST, default 0.0.0.0)
  --engine-url <url>         the engine beside it (DYN_ENGINE_URL, default http://127.0.0.1:8001)
  --worker-id <u64>          the engine's worker id (DYN_WORKER_ID; default: hash of POD_NAME, as discovery derives it)
  --data-parallel-size <n>   DP ranks of the engine, rank r on the engine port + r (DYN_DATA_PARALLEL_SIZE, default 1)
  --enforce-disagg           a failed prefill is a 503, not a local aggregated decode (DYN_ENFORCE_DISAGG=true|false)
  --router-mode <mode>       only "direct" (DYN_ROUTER_MODE): the endpoint picker decides, this sidecar executes
  --tokenizer <src>          for requests without the picker's tokens: qwen3 | llama3 | <directory> | none (DYN_TOKENIZER, default qwen3)
  --max-body-bytes <n>       largest request body (default 67108864)
  --log-level <level>        trace | debug | info | warn | error (DYN_LOG, default info)
  --help                     this text`;

const OPTIONS = {
  port: { type: "string" },
  "http-port": { type: "string" },
  host: { type: "string" },
  "http-host": { type: "string" },
  "engine-url": { type: "string" },
  "worker-id": { type: "string" },
  "data-parallel-size": { type: "string" },
  "enforce-disagg": { type: "boolean" },
  "router-mode": { type: "string" },
  tokenizer: { type: "string" },
  "max-body-bytes": { type: "string" },
  "log-level": { type: "string" },
  help: { type: "boolean" },
} as const;

type Env = Readonly<Record<string, string | undefined>>;

function envValue(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === "" ? undefined : value;
}

function integer(text: string, what: string, min: number, max: number, problems: string[]): number | undefined {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || value < min || value > max) {
    problems.push(`${what}: "${text}" is not an integer in ${min}..${max}`);
    return undefined;
  }
  return value;
}

/** `--help` was asked for: print `USAGE`. */
export function wantsHelp(argv: readonly string[]): boolean {
  return argv.includes("--help") || argv.includes("-h");
}

/**
 * Reads flags and the `DYN_*` variables Dynamo's frontend uses (a flag wins over its variable). Every
 * bad value is reported at once in a `FrontendConfigError` naming the flag or variable.
 */
export function frontendConfig(argv: readonly string[], env: Env = process.env): FrontendConfig {
  const problems: string[] = [];
  let values: ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>["values"];
  try {
    values = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (error) {
    throw new FrontendConfigError([(error as Error).message]);
  }
  /** The first flag given (its value and name), else the variable. */
  const read = (flags: Array<[string | undefined, string]>, variable: string): [string, string] | undefined => {
    for (const [value, name] of flags) if (value !== undefined) return [value, `--${name}`];
    const value = envValue(env, variable);
    return value === undefined ? undefined : [value, variable];
  };

  const portText = read(
    [
      [values.port, "port"],
      [values["http-port"], "http-port"],
    ],
    "DYN_HTTP_PORT",
  );
  const port = portText === undefined ? 8000 : (integer(portText[0], portText[1], 0, 65535, problems) ?? 8000);
  const host =
    read(
      [
        [values.host, "host"],
        [values["http-host"], "http-host"],
      ],
      "DYN_HTTP_HOST",
    )?.[0] ?? "0.0.0.0";

  const engineText = read([[values["engine-url"], "engine-url"]], "DYN_ENGINE_URL");
  let engineUrl = new URL("http://127.0.0.1:8001");
  if (engineText !== undefined) {
    try {
      engineUrl = new URL(engineText[0]);
      if (engineUrl.protocol !== "http:") problems.push(`${engineText[1]}: "${engineText[0]}" must be an http:// URL`);
    } catch {
      problems.push(`${engineText[1]}: "${engineText[0]}" is not a URL (e.g. http://127.0.0.1:8001)`);
    }
  }

  let workerId = 0n;
  let workerIdSource = "";
  const idText = read([[values["worker-id"], "worker-id"]], "DYN_WORKER_ID");
  const podName = envValue(env, "POD_NAME");
  if (idText !== undefined) {
    try {
      workerId = parseWorkerId(idText[0]);
      workerIdSource = idText[1];
    } catch (error) {
      problems.push(`${idText[1]}: ${(error as Error).message}`);
    }
  } else if (podName !== undefined) {
    workerId = podWorkerId(podName);
    workerIdSource = `POD_NAME=${podName}`;
  } else {
    workerId = podWorkerId(hostname());
    workerIdSource = `host name ${hostname()} (set POD_NAME or --worker-id)`;
  }

  const dpText = read([[values["data-parallel-size"], "data-parallel-size"]], "DYN_DATA_PARALLEL_SIZE");
  const dataParallelSize = dpText === undefined ? 1 : (integer(dpText[0], dpText[1], 1, 1024, problems) ?? 1);

  let enforceDisagg = values["enforce-disagg"] === true;
  const enforceText = envValue(env, "DYN_ENFORCE_DISAGG");
  if (values["enforce-disagg"] === undefined && enforceText !== undefined) {
    const lowered = enforceText.toLowerCase();
    if (lowered === "true" || lowered === "1") enforceDisagg = true;
    else if (lowered === "false" || lowered === "0") enforceDisagg = false;
    else problems.push(`DYN_ENFORCE_DISAGG: "${enforceText}" is not true or false`);
  }

  const mode = read([[values["router-mode"], "router-mode"]], "DYN_ROUTER_MODE");
  if (mode !== undefined && mode[0] !== "direct")
    problems.push(
      `${mode[1]}: "${mode[0]}" is not supported: this sidecar runs in direct mode only (the endpoint picker chooses the worker)`,
    );

  const tokenizerText = read([[values.tokenizer, "tokenizer"]], "DYN_TOKENIZER")?.[0] ?? "qwen3";
  const tokenizer: TokenizerSource | null =
    tokenizerText === "none"
      ? null
      : tokenizerText === "qwen3" || tokenizerText === "llama3"
        ? { embedded: tokenizerText }
        : { directory: tokenizerText };

  const bodyText = values["max-body-bytes"];
  const maxBodyBytes =
    bodyText === undefined ? 64 * 2 ** 20 : (integer(bodyText, "--max-body-bytes", 1024, 2 ** 31, problems) ?? 0);
  const logLevel = read([[values["log-level"], "log-level"]], "DYN_LOG")?.[0] ?? "info";
  if (!["trace", "debug", "info", "warn", "error", "fatal", "silent"].includes(logLevel))
    problems.push(`log level "${logLevel}" is not one of trace, debug, info, warn, error, fatal, silent`);

  if (problems.length > 0) throw new FrontendConfigError(problems);
  return {
    host,
    port,
    engineUrl,
    workerId,
    workerIdSource,
    dataParallelSize,
    enforceDisagg,
    tokenizer,
    maxBodyBytes,
    logLevel,
  };
}
