import { parseArgs } from "node:util";
import {
  DISCOVERY_BACKENDS,
  DiscoveryConfigError,
  kubernetesOptionsFromEnv,
  natsOptionsFromEnv,
  staticOptionsFromEnv,
  type DiscoveryBackendName,
} from "./env.js";
import { envValue } from "./namespace.js";
import type { WorkerRegistry } from "./registry.js";
import { formatWorkerId } from "./worker-id.js";
import type { WorkerChange, WorkerInfo } from "./worker.js";

export const USAGE = `Usage: dynamo-discovery <list|watch> --backend <static|nats|kubernetes> [options]

  list     print the workers the router would see once discovery is ready, then exit
  watch    print the list, then one line per change until interrupted

Unset flags fall back to the environment variables in parentheses.

Options:
  --backend <name>            static | nats | kubernetes (DYN_DISCOVERY_BACKEND)
  --json                      JSON output (ids as decimal strings)
  --timeout <ms>              how long to wait for the first full list (default 10000)
  static:      --file <workers.yaml|json>  (DYN_DISCOVERY_FILE, else an inline document in DYN_DISCOVERY_WORKERS)
  nats:        --url <nats://host:port>  (NATS_SERVER)
               --namespace <prefix>      Dynamo namespace prefix (DYN_NAMESPACE_PREFIX > DYN_NAMESPACE > vllm-agg)
               --component <name>        only this component (DYN_COMPONENT_NAME)
               --bucket <name>           KV bucket (default dynamo-instances)
  kubernetes:  --namespace <ns>          Kubernetes namespace (POD_NAMESPACE)
               --inference-pool <name>   select pods by this InferencePool (DYN_EPP_INFERENCE_POOL_NAME)
               --dynamo-namespace <p>    Dynamo namespace prefix for label selection
               --mode <pod|container>    worker id mode (DYN_KUBE_DISCOVERY_MODE)
               --kubeconfig <path>       default: in-cluster, else ~/.kube/config`;

/** A parsed command line. */
export interface CliCommand {
  command: "list" | "watch";
  json: boolean;
  timeoutMs: number;
  registry: WorkerRegistry;
}

/**
 * Parses arguments (environment values fill what the flags leave out) and builds the registry; throws
 * `DiscoveryConfigError` on misuse. Backends are loaded on demand, so `--backend static` starts fast.
 */
export async function parseCommandLine(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<CliCommand> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      backend: { type: "string" },
      json: { type: "boolean", default: false },
      timeout: { type: "string", default: "10000" },
      file: { type: "string" },
      url: { type: "string" },
      namespace: { type: "string" },
      component: { type: "string" },
      bucket: { type: "string" },
      "inference-pool": { type: "string" },
      "dynamo-namespace": { type: "string" },
      mode: { type: "string" },
      kubeconfig: { type: "string" },
    },
  });
  const [command, ...extra] = positionals;
  if ((command !== "list" && command !== "watch") || extra.length > 0)
    throw new DiscoveryConfigError("expected one command: list or watch");
  const backend = (values.backend ?? envValue(env, "DYN_DISCOVERY_BACKEND")) as DiscoveryBackendName | undefined;
  if (backend === undefined || !DISCOVERY_BACKENDS.includes(backend)) {
    throw new DiscoveryConfigError(
      `--backend (or DYN_DISCOVERY_BACKEND) must be one of ${DISCOVERY_BACKENDS.join(", ")}`,
    );
  }
  const timeoutMs = Number(values.timeout);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0)
    throw new DiscoveryConfigError(`--timeout "${values.timeout}" is not a positive integer`);
  const overlay = (entries: Record<string, string | undefined>): NodeJS.ProcessEnv => {
    const merged = { ...env };
    for (const [name, value] of Object.entries(entries)) if (value !== undefined) merged[name] = value;
    return merged;
  };

  let registry: WorkerRegistry;
  switch (backend) {
    case "static": {
      const merged = overlay({ DYN_DISCOVERY_FILE: values.file });
      if (
        envValue(merged, "DYN_DISCOVERY_FILE") === undefined &&
        envValue(merged, "DYN_DISCOVERY_WORKERS") === undefined
      ) {
        throw new DiscoveryConfigError("--backend static needs --file, DYN_DISCOVERY_FILE or DYN_DISCOVERY_WORKERS");
      }
      const options = staticOptionsFromEnv(merged);
      const { StaticDiscovery } = await import("./static/backend.js");
      registry = new StaticDiscovery("file" in options ? { ...options, pollIntervalMs: 1000 } : options);
      break;
    }
    case "nats": {
      const options = natsOptionsFromEnv(
        overlay({
          NATS_SERVER: values.url,
          DYN_NAMESPACE_PREFIX: values.namespace,
          DYN_COMPONENT_NAME: values.component,
        }),
      );
      if (values.bucket !== undefined) options.bucket = values.bucket;
      const { NatsDiscovery } = await import("./nats/discovery.js");
      registry = new NatsDiscovery(options);
      break;
    }
    case "kubernetes": {
      const options = kubernetesOptionsFromEnv(
        overlay({
          POD_NAMESPACE: values.namespace,
          DYN_EPP_INFERENCE_POOL_NAME: values["inference-pool"],
          DYN_NAMESPACE_PREFIX: values["dynamo-namespace"],
          DYN_KUBE_DISCOVERY_MODE: values.mode,
        }),
      );
      const [{ KubeConfig }, { KubernetesDiscovery }] = await Promise.all([
        import("@kubernetes/client-node"),
        import("./kubernetes/backend.js"),
      ]);
      if (values.kubeconfig !== undefined) {
        const kubeConfig = new KubeConfig();
        kubeConfig.loadFromFile(values.kubeconfig);
        options.kubeConfig = kubeConfig;
      }
      registry = new KubernetesDiscovery(options);
      break;
    }
  }
  return { command, json: values.json, timeoutMs, registry };
}

/** JSON text of workers: bigint ids as decimal strings, in-memory model-card bytes as their size. */
export function workersJson(workers: readonly WorkerInfo[] | WorkerChange): string {
  return JSON.stringify(workers, (_key, value: unknown) => {
    if (typeof value === "bigint") return formatWorkerId(value);
    if (value instanceof Uint8Array) return { byteLength: value.byteLength };
    return value;
  });
}

/** A fixed-width table, one worker per line. */
export function workersTable(workers: readonly WorkerInfo[]): string {
  const header = ["ID", "NAME", "ROLE", "NAMESPACE", "HTTP", "DP", "KV EVENTS", "MODEL", "BLOCK"];
  const rows = workers.map((w) => [
    formatWorkerId(w.id),
    w.name,
    w.role,
    w.namespace || "-",
    w.httpEndpoint,
    w.dpSize === 1 ? "1" : `${w.dpSize}@${w.dpStartRank}`,
    w.kvEvents
      ? w.kvEvents.endpoints[0]! + (w.kvEvents.endpoints.length > 1 ? ` +${w.kvEvents.endpoints.length - 1}` : "")
      : "-",
    w.modelName ?? "-",
    w.blockSize === undefined ? "-" : String(w.blockSize),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]): string =>
    cells
      .map((cell, column) => cell.padEnd(widths[column]!))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

/** One change as a line: `added <id> <name> <http>`. */
export function changeLine(change: WorkerChange): string {
  const { worker } = change;
  return `${change.type} ${formatWorkerId(worker.id)} ${worker.name} ${worker.httpEndpoint}`;
}
