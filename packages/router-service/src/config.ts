import { ACCEPTED, readSettings, schemas, setting, type Environment, type Setting } from "@dynamo/kv-router";
import { z } from "zod";

/**
 * Settings of the service itself (the router's own are `@dynamo/kv-router`'s table): where workers,
 * KV events and tokenizers come from, and how to reach NATS.
 */
export interface ServiceSettings {
  /** Worker discovery: `none` (workers added in-process), `static`, `nats` or `kubernetes`. */
  discovery: "none" | "static" | "nats" | "kubernetes";
  /**
   * KV-event transport: `nats` (router events from the bridges beside the workers), `zmq` (straight from
   * each worker's vLLM ZeroMQ publisher), or `none` (events delivered in-process, or approximate mode).
   * Unset: `nats` with NATS or Kubernetes discovery, `zmq` with static discovery, `none` without discovery.
   */
  eventPlane: "nats" | "zmq" | "none" | undefined;
  /** NATS server URLs (event plane and NATS discovery). */
  natsServer: string[];
  natsUser: string | undefined;
  natsPassword: string | undefined;
  natsToken: string | undefined;
  /** NKey seed (`SU…`), or the path of a file holding it. */
  natsNkey: string | undefined;
  /** Path of a `.creds` file (user JWT + NKey seed). */
  natsCredentialsFile: string | undefined;
  natsTlsCa: string | undefined;
  natsTlsCert: string | undefined;
  natsTlsKey: string | undefined;
  /** Dynamo namespace of the event plane for workers whose discovery record names none. */
  namespace: string;
  /** Worker component of the event plane for workers whose discovery record names none. */
  component: string;
  /** Durable event plane (JetStream stream + one durable consumer per service instance). */
  durableKvEvents: boolean;
  /** Tokenizer directory used for every model no worker's model card covers (default: the embedded Qwen3). */
  modelPath: string | undefined;
}

type Key = keyof ServiceSettings;
const s = setting<Key>;
const NATS_URLS = /^\s*(nats|tls|ws|wss):\/\/[^\s,]+(\s*,\s*(nats|tls|ws|wss):\/\/[^\s,]+)*\s*$/;
const path = () => z.string().min(1);

export const SERVICE_SETTINGS: readonly Setting<Key>[] = [
  s(
    "discovery",
    "DYN_DISCOVERY_BACKEND",
    "enum",
    schemas.oneOf(["none", "static", "nats", "kubernetes"]),
    "none, static, nats or kubernetes",
  ),
  s("eventPlane", "DYN_EVENT_PLANE", "enum", schemas.oneOf(["nats", "zmq", "none"]), "nats, zmq or none"),
  s("natsServer", "NATS_SERVER", "string", z.string().regex(NATS_URLS), "nats:// (or tls://) URLs, comma-separated"),
  s("natsUser", "NATS_AUTH_USERNAME", "string", z.string(), "a user name"),
  s("natsPassword", "NATS_AUTH_PASSWORD", "string", z.string(), "a password"),
  s("natsToken", "NATS_AUTH_TOKEN", "string", z.string(), "a token"),
  s("natsNkey", "NATS_AUTH_NKEY", "string", z.string(), "an NKey seed or the path of a seed file"),
  s("natsCredentialsFile", "NATS_AUTH_CREDENTIALS_FILE", "string", path(), "the path of a .creds file"),
  s("natsTlsCa", "NATS_TLS_CA_CERT_PATH", "string", path(), "the path of a PEM CA certificate"),
  s("natsTlsCert", "NATS_TLS_CERT_PATH", "string", path(), "the path of a PEM client certificate"),
  s("natsTlsKey", "NATS_TLS_KEY_PATH", "string", path(), "the path of a PEM client key"),
  s("namespace", ["DYN_NAMESPACE_PREFIX", "DYN_NAMESPACE"], "string", z.string(), "a Dynamo namespace"),
  s("component", "DYN_COMPONENT_NAME", "string", z.string(), "a component name"),
  s("durableKvEvents", "DYN_ROUTER_DURABLE_KV_EVENTS", "bool", z.boolean(), ACCEPTED.bool),
  s("modelPath", "DYN_MODEL_PATH", "string", path(), "a tokenizer directory"),
];

export const DEFAULT_SERVICE_SETTINGS: Readonly<ServiceSettings> = Object.freeze({
  discovery: "none",
  eventPlane: undefined,
  natsServer: ["nats://localhost:4222"],
  natsUser: undefined,
  natsPassword: undefined,
  natsToken: undefined,
  natsNkey: undefined,
  natsCredentialsFile: undefined,
  natsTlsCa: undefined,
  natsTlsCert: undefined,
  natsTlsKey: undefined,
  namespace: "vllm-agg",
  component: "backend",
  durableKvEvents: false,
  modelPath: undefined,
});

/**
 * The service settings present in `env` (see the README's table); throws `RouterConfigError` naming
 * every bad variable. Discovery defaults to `kubernetes` when `POD_NAMESPACE` is set, else `none`.
 */
export function serviceSettingsFromEnv(env: Environment): Partial<ServiceSettings> {
  const read = readSettings(SERVICE_SETTINGS, env) as Partial<Record<Key, unknown>>;
  const out = { ...read } as Partial<ServiceSettings>;
  if (typeof read.natsServer === "string") out.natsServer = read.natsServer.split(",").map((url) => url.trim());
  if (out.discovery === undefined && env["POD_NAMESPACE"]?.trim()) out.discovery = "kubernetes";
  return out;
}

/** The event plane in force: the configured one, else the default for the discovery backend. */
export function eventPlaneOf(settings: Pick<ServiceSettings, "discovery" | "eventPlane">): "nats" | "zmq" | "none" {
  if (settings.eventPlane !== undefined) return settings.eventPlane;
  if (settings.discovery === "none") return "none";
  return settings.discovery === "static" ? "zmq" : "nats";
}
