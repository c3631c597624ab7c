import type { DiscoveryProblem, WorkerChange, WorkerRegistry } from "../src/index.js";

/** Records every change and problem a registry emits. */
export function record(registry: WorkerRegistry): { changes: WorkerChange[]; problems: DiscoveryProblem[] } {
  const changes: WorkerChange[] = [];
  const problems: DiscoveryProblem[] = [];
  registry.on("change", (change) => changes.push(change));
  registry.on("problem", (problem) => problems.push(problem));
  return { changes, problems };
}

/** Names of the current workers, sorted. */
export function names(registry: WorkerRegistry): string[] {
  return registry.list().map((worker) => worker.name).sort();
}
