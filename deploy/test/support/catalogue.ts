// What the tests render: every kustomization in deploy/, plus the compositions docs/deploy.md tells users
// to write themselves (components added to an overlay in their own kustomization).
import { join } from "node:path";
import { DEPLOY_DIR, kustomizationDirs, render, renderComposition } from "./render.js";
import type { K8sObject } from "./objects.js";

export interface RenderedSet {
  /** `overlays/agg`, or `overlays/disagg + components/istio` for a composition. */
  name: string;
  objects: K8sObject[];
}

/** Compositions of an overlay with components, as docs/deploy.md shows them. */
export const COMPOSITIONS: { resources: string[]; components: string[] }[] = [
  { resources: ["overlays/disagg"], components: ["components/istio"] },
];

/** A complete model deployment (EPP, pool, route, workers): overlays and model recipes. */
export function isServingDeployment(path: string): boolean {
  return /^overlays\/[^/]+$/.test(path) || /^recipes\/[^/]+\/(?!model-cache$)[^/]+$/.test(path);
}

/**
 * Pieces that only make sense inside an overlay (the base without workers, the worker variants): they
 * refer to objects (the EPP's ConfigMap, the workers' ServiceAccount) that the overlay brings together.
 */
export function isBuildingBlock(path: string): boolean {
  return path === "base" || path.startsWith("workers/");
}

const cache = new Map<string, Promise<K8sObject[]>>();

function cached(name: string, produce: () => Promise<K8sObject[]>): Promise<K8sObject[]> {
  let result = cache.get(name);
  if (!result) {
    result = produce();
    cache.set(name, result);
  }
  return result;
}

/** The rendering of one kustomization under deploy/ (cached for the test file). */
export function renderDir(path: string): Promise<K8sObject[]> {
  return cached(path, () => render(join(DEPLOY_DIR, path)));
}

export function compositionName(composition: { resources: string[]; components: string[] }): string {
  return [...composition.resources, ...composition.components].join(" + ");
}

/** Every kustomization (not components) under deploy/, and every composition, rendered. */
export async function renderAll(): Promise<RenderedSet[]> {
  const dirs = kustomizationDirs().filter((dir) => dir.kind === "Kustomization");
  const sets = await Promise.all(dirs.map(async (dir) => ({ name: dir.path, objects: await renderDir(dir.path) })));
  const compositions = await Promise.all(
    COMPOSITIONS.map(async (composition) => {
      const name = compositionName(composition);
      return { name, objects: await cached(name, () => renderComposition(composition)) };
    }),
  );
  return [...sets, ...compositions];
}

/** The complete model deployments among `renderAll()`: overlays, recipes and compositions. */
export async function renderServing(): Promise<RenderedSet[]> {
  const compositionNames = new Set(COMPOSITIONS.map(compositionName));
  return (await renderAll()).filter((set) => isServingDeployment(set.name) || compositionNames.has(set.name));
}
