import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import type { DevGatewayOptions } from "./gateway.js";

export const USAGE = `dev-gateway: an HTTP gateway that routes through an endpoint picker (Envoy ext_proc)

  --port <n>            listen port (DEV_GATEWAY_PORT, default 8080)
  --host <addr>         listen address (DEV_GATEWAY_HOST, default 127.0.0.1)
  --epp <list>          endpoint picker host:port, or several comma-separated: requests spread round-robin over
                        the healthy ones (DEV_GATEWAY_EPP, default 127.0.0.1:9002)
  --epp-health-port <n> the pickers' plaintext gRPC health port, e.g. 9003; default: their ext_proc port
                        (DEV_GATEWAY_EPP_HEALTH_PORT; several pickers only)
  --epp-health-interval <ms>
                        time between health checks of each picker (DEV_GATEWAY_EPP_HEALTH_INTERVAL_MS, default 1000)
  --epp-tls <mode>      on: TLS without verification (default, for the picker's self-signed certificate);
                        off: plaintext h2c; or a CA file to verify against (DEV_GATEWAY_EPP_TLS)
  --endpoints <list>    pool endpoints ip:port,... sent as the subset hint (DEV_GATEWAY_ENDPOINTS)
  --close-mode <mode>   reset (Envoy's default) or graceful (DEV_GATEWAY_CLOSE_MODE)
`;

/** Options from command-line flags, falling back to `DEV_GATEWAY_*` variables. Throws on bad values. */
export function configFrom(argv: string[], env: NodeJS.ProcessEnv): DevGatewayOptions | "help" {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: "string" },
      host: { type: "string" },
      epp: { type: "string" },
      "epp-tls": { type: "string" },
      "epp-health-port": { type: "string" },
      "epp-health-interval": { type: "string" },
      endpoints: { type: "string" },
      "close-mode": { type: "string" },
      help: { type: "boolean" },
    },
  });
  if (values.help) return "help";
  const pick = (flag: string | undefined, name: string) => {
    const value = (flag ?? env[name])?.trim();
    return value === "" ? undefined : value;
  };
  const portText = pick(values.port, "DEV_GATEWAY_PORT") ?? "8080";
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`--port / DEV_GATEWAY_PORT: "${portText}" is not a port`);
  const tlsText = pick(values["epp-tls"], "DEV_GATEWAY_EPP_TLS") ?? "on";
  const tls = tlsText === "on" ? true : tlsText === "off" ? false : { ca: readFileSync(tlsText) };
  const closeMode = pick(values["close-mode"], "DEV_GATEWAY_CLOSE_MODE") ?? "reset";
  if (closeMode !== "reset" && closeMode !== "graceful") {
    throw new Error(`--close-mode / DEV_GATEWAY_CLOSE_MODE: "${closeMode}" is neither reset nor graceful`);
  }
  const target = pick(values.epp, "DEV_GATEWAY_EPP") ?? "127.0.0.1:9002";
  if (target.split(",").some((t) => !/^\S+:\d+$/.test(t.trim())))
    throw new Error(`--epp / DEV_GATEWAY_EPP: "${target}" is not a comma-separated list of host:port`);
  const healthPortText = pick(values["epp-health-port"], "DEV_GATEWAY_EPP_HEALTH_PORT");
  const healthPort = healthPortText === undefined ? undefined : Number(healthPortText);
  if (healthPort !== undefined && (!Number.isInteger(healthPort) || healthPort < 1 || healthPort > 65535))
    throw new Error(`--epp-health-port / DEV_GATEWAY_EPP_HEALTH_PORT: "${healthPortText}" is not a port`);
  const intervalText = pick(values["epp-health-interval"], "DEV_GATEWAY_EPP_HEALTH_INTERVAL_MS");
  const intervalMs = intervalText === undefined ? undefined : Number(intervalText);
  if (intervalMs !== undefined && !(Number.isFinite(intervalMs) && intervalMs > 0))
    throw new Error(
      `--epp-health-interval / DEV_GATEWAY_EPP_HEALTH_INTERVAL_MS: "${intervalText}" is not a positive number of ms`,
    );
  const healthCheck = {
    ...(healthPort !== undefined && { port: healthPort }),
    ...(intervalMs !== undefined && { intervalMs }),
  };
  const endpoints = pick(values.endpoints, "DEV_GATEWAY_ENDPOINTS")
    ?.split(",")
    .map((e) => e.trim())
    .filter((e) => e !== "");
  return {
    port,
    host: pick(values.host, "DEV_GATEWAY_HOST") ?? "127.0.0.1",
    extProc: { target, tls, closeMode },
    ...(Object.keys(healthCheck).length > 0 && { healthCheck }),
    ...(endpoints !== undefined ? { endpoints } : {}),
  };
}
