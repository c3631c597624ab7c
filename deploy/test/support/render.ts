// Rendering kustomizations with the real `kubectl kustomize`, and finding every kustomization in deploy/.
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import type { K8sObject } from "./objects.js";

const run = promisify(execFile);

/** The deploy/ directory. */
export const DEPLOY_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const REPO_DIR = join(DEPLOY_DIR, "..");

/** The oldest kustomize the manifests are written for (`labels`, components, `patches` with targets). */
export const MIN_KUSTOMIZE_MAJOR = 5;

export async function kustomizeVersion(): Promise<string> {
  const { stdout } = await run("kubectl", ["version", "--client", "-o", "json"]);
  const version = (JSON.parse(stdout) as { kustomizeVersion?: string }).kustomizeVersion;
  if (!version) throw new Error("`kubectl version --client` reports no kustomize version");
  return version;
}

/** Parses a multi-document YAML stream; empty documents are skipped, syntax errors throw naming `source`. */
export function parseObjects(text: string, source: string): K8sObject[] {
  const objects: K8sObject[] = [];
  for (const document of parseAllDocuments(text)) {
    if (document.errors.length > 0) throw new Error(`${source}: ${document.errors[0]!.message}`);
    const value = document.toJS() as unknown;
    if (value !== null && value !== undefined) objects.push(value as K8sObject);
  }
  return objects;
}

/** `kubectl kustomize <dir>`, parsed. */
export async function render(dir: string): Promise<K8sObject[]> {
  try {
    const { stdout } = await run("kubectl", ["kustomize", dir], { maxBuffer: 64 * 1024 * 1024 });
    return parseObjects(stdout, relative(REPO_DIR, dir));
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr;
    throw new Error(`kubectl kustomize ${relative(REPO_DIR, dir)} failed: ${stderr?.trim() || String(error)}`);
  }
}

/**
 * Renders a kustomization that is not in the tree (a user's wrapper, a composition of components)
 * from a temporary directory; `resources` and `components` are paths relative to deploy/.
 */
export async function renderComposition(composition: {
  resources: string[];
  components?: string[];
  extra?: Record<string, unknown>;
}): Promise<K8sObject[]> {
  const dir = mkdtempSync(join(tmpdir(), "deploy-composition-"));
  try {
    const path = (entry: string) => relative(dir, join(DEPLOY_DIR, entry));
    const kustomization = {
      apiVersion: "kustomize.config.k8s.io/v1beta1",
      kind: "Kustomization",
      resources: composition.resources.map(path),
      components: (composition.components ?? []).map(path),
      ...composition.extra,
    };
    writeFileSync(join(dir, "kustomization.yaml"), JSON.stringify(kustomization));
    return await render(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface KustomizationDir {
  /** Path relative to deploy/, e.g. `overlays/agg`. */
  path: string;
  kind: "Kustomization" | "Component";
  /** Paths (relative to deploy/) of the resources and components it includes. */
  includes: string[];
}

/** Every directory under deploy/ with a kustomization.yaml, sorted. */
export function kustomizationDirs(): KustomizationDir[] {
  const found: KustomizationDir[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory() || entry.name === "node_modules" || entry.name === "test") continue;
      const child = join(dir, entry.name);
      const file = join(child, "kustomization.yaml");
      try {
        const parsed = parseYaml(readFileSync(file, "utf8")) as {
          kind?: string;
          resources?: string[];
          components?: string[];
        };
        const includes = [...(parsed.resources ?? []), ...(parsed.components ?? [])]
          .filter((entry) => !entry.endsWith(".yaml"))
          .map((entry) => relative(DEPLOY_DIR, join(child, entry)));
        found.push({
          path: relative(DEPLOY_DIR, child),
          kind: parsed.kind === "Component" ? "Component" : "Kustomization",
          includes,
        });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      }
      walk(child);
    }
  };
  walk(DEPLOY_DIR);
  return found.sort((a, b) => a.path.localeCompare(b.path));
}
