import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";

interface Manifest {
  readonly name: string;
  readonly version: string;
  readonly description?: string;
  readonly dependencies?: Record<string, string>;
}

const readManifest = (dir: string): Manifest => JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as Manifest;

/** Every workspace package and app by name, with its folder. */
export function workspaceFolders(root: string): Map<string, string> {
  const folders = new Map<string, string>();
  for (const group of ["packages", "apps"]) {
    for (const entry of readdirSync(join(root, group), { withFileTypes: true })) {
      const dir = join(root, group, entry.name);
      if (entry.isDirectory() && existsSync(join(dir, "package.json"))) folders.set(readManifest(dir).name, dir);
    }
  }
  return folders;
}

/** The folder of `dependency` as Node resolves it from `fromDir` (the nearest `node_modules` above it). */
export function installedFolder(dependency: string, fromDir: string): string {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", dependency);
    if (existsSync(join(candidate, "package.json"))) return candidate;
    if (dirname(dir) === dir) throw new Error(`${dependency} is not installed above ${fromDir}`);
  }
}

export interface RuntimeDependency {
  /** The exact version installed for the workspace package that declares it. */
  readonly version: string;
  /** Where that version is installed. */
  readonly folder: string;
}

/**
 * The third-party dependencies an app's bundle needs at run time: its own `dependencies` and those of every
 * workspace package it reaches through `dependencies` (those are inlined into the bundle, their own
 * dependencies are not), each pinned to the version the workspace installed for its declarer. Two declarers
 * that resolve one dependency to different versions are an error: the bundle can load only one.
 */
export function runtimeDependencies(root: string, appDir: string): Map<string, RuntimeDependency> {
  const folders = workspaceFolders(root);
  const found = new Map<string, RuntimeDependency & { declaredBy: string }>();
  const visited = new Set<string>();
  const visit = (dir: string) => {
    if (visited.has(dir)) return;
    visited.add(dir);
    const manifest = readManifest(dir);
    for (const name of Object.keys(manifest.dependencies ?? {})) {
      const workspace = folders.get(name);
      if (workspace !== undefined) {
        visit(workspace);
        continue;
      }
      const folder = installedFolder(name, dir);
      const { version } = readManifest(folder);
      const earlier = found.get(name);
      if (earlier !== undefined && earlier.version !== version)
        throw new Error(
          `${name}: ${earlier.declaredBy} uses ${earlier.version} and ${manifest.name} uses ${version}; ` +
            `one bundle can load only one version, align the two declarations`,
        );
      found.set(name, { version, folder, declaredBy: manifest.name });
    }
  };
  visit(appDir);
  return new Map(
    [...found].sort(([a], [b]) => a.localeCompare(b)).map(([name, { version, folder }]) => [name, { version, folder }]),
  );
}

/** The `package.json` written beside an app's bundle: what `npm install --omit=dev` needs in an image. */
export function bundleManifest(root: string, appDir: string): Record<string, unknown> {
  const app = readManifest(appDir);
  const dependencies = Object.fromEntries([...runtimeDependencies(root, appDir)].map(([name, d]) => [name, d.version]));
  return {
    name: app.name,
    version: app.version,
    ...(app.description !== undefined && { description: app.description }),
    private: true,
    type: "module",
    main: "main.js",
    dependencies,
  };
}
