// Several EPP replicas only route as one when they share their bookings: more than one replica needs
// DYN_ROUTER_REPLICA_SYNC=true, a NATS server to share them on, and a PodDisruptionBudget so a drain never
// takes every replica at once.
import type { Check } from "./checks-workloads.js";
import { ofKind, selects, spec, type K8sObject } from "./objects.js";
import { epp, TopologyError } from "./serving.js";

export const eppReplicasRouteAsOne: Check = (objects) => {
  let found;
  try {
    found = epp(objects);
  } catch (error) {
    if (error instanceof TopologyError) return [error.message];
    throw error;
  }
  const { container, env } = found;
  const replicas = spec<{ replicas?: number }>(container.pod.owner).replicas ?? 1;
  const sync = env.get("DYN_ROUTER_REPLICA_SYNC")?.value === "true";
  const problems: string[] = [];
  if (replicas > 1 && !sync)
    problems.push(
      `${replicas} EPP replicas without DYN_ROUTER_REPLICA_SYNC=true: each would route on its own bookings`,
    );
  if (sync && env.get("NATS_SERVER")?.value === undefined)
    problems.push("DYN_ROUTER_REPLICA_SYNC=true without NATS_SERVER: the replicas have nowhere to share bookings");
  if (replicas > 1) {
    const budgets = ofKind(objects, "PodDisruptionBudget").filter((budget: K8sObject) =>
      selects(
        spec<{ selector?: { matchLabels?: Record<string, string> } }>(budget).selector?.matchLabels,
        container.pod.labels,
      ),
    );
    if (budgets.length === 0) problems.push(`${replicas} EPP replicas and no PodDisruptionBudget selecting them`);
    for (const budget of budgets) {
      const { minAvailable } = spec<{ minAvailable?: number }>(budget);
      if (typeof minAvailable === "number" && minAvailable >= replicas)
        problems.push(
          `PodDisruptionBudget ${budget.metadata.name} minAvailable ${minAvailable} blocks every drain of ${replicas} replicas`,
        );
    }
  }
  return problems;
};

export const REPLICA_CHECKS: Record<string, Check> = { eppReplicasRouteAsOne };
