import {
  DISCOVERY_BACKENDS,
  kubernetesOptionsFromEnv,
  natsOptionsFromEnv,
  oneOf,
  staticOptionsFromEnv,
} from "./env.js";
import { KubernetesDiscovery } from "./kubernetes/backend.js";
import { NatsDiscovery } from "./nats/discovery.js";
import type { WorkerRegistry } from "./registry.js";
import { StaticDiscovery } from "./static/backend.js";

/** The registry `DYN_DISCOVERY_BACKEND` (default `kubernetes`) selects, configured from the environment. */
export function discoveryFromEnv(env: NodeJS.ProcessEnv = process.env): WorkerRegistry {
  const backend = oneOf(env, "DYN_DISCOVERY_BACKEND", DISCOVERY_BACKENDS) ?? "kubernetes";
  switch (backend) {
    case "static":
      return new StaticDiscovery(staticOptionsFromEnv(env));
    case "nats":
      return new NatsDiscovery(natsOptionsFromEnv(env));
    case "kubernetes":
      return new KubernetesDiscovery(kubernetesOptionsFromEnv(env));
  }
}
