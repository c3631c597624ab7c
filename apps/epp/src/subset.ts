import type { EndpointSubset } from "@dynamo/ext-proc";
import type { RouterService } from "@dynamo/router-service";

/** The workers with an address (any of their DP ranks') inside the gateway's endpoint subset. */
export function workersInSubset(service: RouterService, subset: EndpointSubset): Set<bigint> {
  const allowed = new Set<bigint>();
  for (const worker of service.listWorkers()) {
    if (subset.allows(worker.httpEndpoint) || worker.rankHttpEndpoints.some((e) => e !== "" && subset.allows(e)))
      allowed.add(worker.id);
  }
  return allowed;
}
