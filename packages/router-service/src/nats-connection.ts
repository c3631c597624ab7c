import { existsSync, readFileSync } from "node:fs";
import {
  connect,
  credsAuthenticator,
  nkeyAuthenticator,
  type NatsConnection,
  type NodeConnectionOptions,
} from "@nats-io/transport-node";
import type { ServiceSettings } from "./config.js";

export type NatsSettings = Pick<
  ServiceSettings,
  | "natsServer"
  | "natsUser"
  | "natsPassword"
  | "natsToken"
  | "natsNkey"
  | "natsCredentialsFile"
  | "natsTlsCa"
  | "natsTlsCert"
  | "natsTlsKey"
>;

/** NATS could not be reached or refused the service; the message names the setting to fix. */
export class NatsConnectError extends Error {
  override readonly name = "NatsConnectError";
}

function readFileOf(variable: string, file: string): Uint8Array {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new NatsConnectError(`${variable}: cannot read ${file}: ${(error as Error).message}`);
  }
}

/** Which variables configure the credentials in use, for error messages. */
function credentialVariables(s: NatsSettings): string {
  const used = [
    s.natsUser !== undefined && "NATS_AUTH_USERNAME/NATS_AUTH_PASSWORD",
    s.natsToken !== undefined && "NATS_AUTH_TOKEN",
    s.natsNkey !== undefined && "NATS_AUTH_NKEY",
    s.natsCredentialsFile !== undefined && "NATS_AUTH_CREDENTIALS_FILE",
  ].filter(Boolean);
  return used.length > 0 ? used.join(", ") : "none set (NATS_AUTH_* are unset)";
}

/**
 * Connection options from the settings: one credential kind at most (user + password, token, NKey seed
 * or `.creds` file), TLS when a CA, a client certificate or a `tls://` URL is given. Throws
 * `NatsConnectError` naming the variable of an incomplete or unreadable setting.
 */
export function natsConnectionOptions(s: NatsSettings): NodeConnectionOptions {
  const kinds = [
    s.natsUser !== undefined || s.natsPassword !== undefined,
    s.natsToken !== undefined,
    s.natsNkey !== undefined,
    s.natsCredentialsFile !== undefined,
  ].filter(Boolean).length;
  if (kinds > 1) {
    throw new NatsConnectError(
      `NATS credentials: set one of NATS_AUTH_USERNAME + NATS_AUTH_PASSWORD, NATS_AUTH_TOKEN, NATS_AUTH_NKEY or NATS_AUTH_CREDENTIALS_FILE, not ${credentialVariables(s)}`,
    );
  }
  const options: NodeConnectionOptions = { servers: s.natsServer };
  if (s.natsUser !== undefined || s.natsPassword !== undefined) {
    if (s.natsUser === undefined || s.natsPassword === undefined)
      throw new NatsConnectError("NATS_AUTH_USERNAME and NATS_AUTH_PASSWORD must be set together");
    options.user = s.natsUser;
    options.pass = s.natsPassword;
  }
  if (s.natsToken !== undefined) options.token = s.natsToken;
  if (s.natsNkey !== undefined) {
    const value = s.natsNkey.trim();
    const seed = value.startsWith("S") ? value : new TextDecoder().decode(readFileOf("NATS_AUTH_NKEY", value)).trim();
    if (!seed.startsWith("SU"))
      throw new NatsConnectError("NATS_AUTH_NKEY: expected a user NKey seed (SU…) or the path of a file holding one");
    options.authenticator = nkeyAuthenticator(new TextEncoder().encode(seed));
  }
  if (s.natsCredentialsFile !== undefined) {
    options.authenticator = credsAuthenticator(readFileOf("NATS_AUTH_CREDENTIALS_FILE", s.natsCredentialsFile));
  }
  if (s.natsTlsCert !== undefined || s.natsTlsKey !== undefined) {
    if (s.natsTlsCert === undefined || s.natsTlsKey === undefined)
      throw new NatsConnectError("NATS_TLS_CERT_PATH and NATS_TLS_KEY_PATH must be set together");
  }
  const tlsUrl = s.natsServer.some((url) => url.startsWith("tls://"));
  if (s.natsTlsCa !== undefined || s.natsTlsCert !== undefined || tlsUrl) {
    for (const [variable, file] of [
      ["NATS_TLS_CA_CERT_PATH", s.natsTlsCa],
      ["NATS_TLS_CERT_PATH", s.natsTlsCert],
      ["NATS_TLS_KEY_PATH", s.natsTlsKey],
    ] as const) {
      if (file !== undefined && !existsSync(file)) throw new NatsConnectError(`${variable}: ${file} does not exist`);
    }
    options.tls = {
      ...(s.natsTlsCa !== undefined && { caFile: s.natsTlsCa }),
      ...(s.natsTlsCert !== undefined && { certFile: s.natsTlsCert, keyFile: s.natsTlsKey }),
    };
  }
  return options;
}

/**
 * Connects once with the configured credentials and TLS; once connected it reconnects forever (every
 * 250 ms). A refused first connection fails at once with a message naming the settings involved,
 * rather than retrying in the background.
 */
export async function connectNats(s: NatsSettings): Promise<NatsConnection> {
  const options = natsConnectionOptions(s);
  try {
    return await connect({
      timeout: 10_000,
      ...options,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      pingInterval: 5_000,
    });
  } catch (error) {
    const message = (error as Error).message;
    const where = `NATS at ${s.natsServer.join(", ")} (NATS_SERVER)`;
    if (/authoriz|authentic|permission|user|expired/i.test(message))
      throw new NatsConnectError(`${where} refused the credentials (${credentialVariables(s)}): ${message}`, {
        cause: error,
      });
    if (options.tls !== undefined)
      throw new NatsConnectError(
        `${where}: cannot connect over TLS (check NATS_TLS_CA_CERT_PATH, NATS_TLS_CERT_PATH, NATS_TLS_KEY_PATH): ${message}`,
        { cause: error },
      );
    throw new NatsConnectError(`${where}: cannot connect: ${message}`, { cause: error });
  }
}
