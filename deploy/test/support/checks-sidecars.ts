// The frontend sidecar accepts what the manifests give it: its command line and environment go through the
// parser the sidecar runs, so a flag it does not know, or a value it refuses, fails here instead of in a
// crash-looping pod. (The mocker's command lines are checked the same way in consistency.test.ts.)
import { frontendConfig } from "@dynamo/frontend";
import type { Check } from "./checks-workloads.js";
import { PROJECT_IMAGE_PREFIX } from "./checks-workloads.js";
import { allContainers, expandedArgs, resolveEnv, type ContainerRef, type ResolvedEnv } from "./objects.js";

/** A value only the cluster knows (a pod name from the downward API) stands in as a plausible one. */
const CLUSTER_VALUE = "dynamo-worker-5d8c7b9f4-x2x7q";

function values(env: ResolvedEnv): Record<string, string> {
  return Object.fromEntries([...env].map(([name, variable]) => [name, variable.value ?? CLUSTER_VALUE]));
}

function argsWithClusterValues(ref: ContainerRef, env: ResolvedEnv): string[] {
  return expandedArgs(ref, env).map((arg) => arg.replace(/<[^>]+>/g, CLUSTER_VALUE));
}

const containersOf = (objects: Parameters<Check>[0], app: string) =>
  allContainers(objects).filter((ref) => (ref.container.image ?? "").startsWith(`${PROJECT_IMAGE_PREFIX}${app}:`));

/** Every frontend sidecar starts: its flags and `DYN_*` environment pass the frontend's own parser. */
export const frontendAcceptsConfiguration: Check = (objects) =>
  containersOf(objects, "frontend").flatMap((ref) => {
    const env = resolveEnv(ref, objects);
    try {
      frontendConfig(argsWithClusterValues(ref, env), values(env));
      return [];
    } catch (error) {
      return [`${ref.where}: the frontend refuses its configuration: ${(error as Error).message}`];
    }
  });

export const SIDECAR_CHECKS: Record<string, Check> = { frontendAcceptsConfiguration };
