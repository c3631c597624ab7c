import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const run = promisify(execFile);

/** Builds with the folder's own tsup config into `outDir` (no declarations). */
const BUILD = `import { build } from "tsup"; await build({ outDir: process.argv[1], silent: true });`;

/** An app's bundle staged in a folder outside the workspace, as an image would hold it. */
export interface StagedBundle {
  /** The folder holding the bundle (`main.js`), its `package.json` and a `node_modules` of its dependencies only. */
  readonly dir: string;
  /** The bundle's entry: run it with `node <main>`. */
  readonly main: string;
  /** Removes the folder. */
  remove(): void;
}

/** Every installed copy of a package in the workspace: the root's and those nested under a workspace folder. */
function installedCopies(name: string): string[] {
  const roots = [ROOT];
  for (const group of ["packages", "apps", "deploy"]) {
    const dir = join(ROOT, group);
    if (group === "deploy") roots.push(dir);
    else
      for (const entry of readdirSync(dir, { withFileTypes: true }))
        if (entry.isDirectory()) roots.push(join(dir, entry.name));
  }
  return roots.map((dir) => join(dir, "node_modules", name)).filter((dir) => existsSync(join(dir, "package.json")));
}

/**
 * Builds an app (`apps/<name>`) with its tsup config and stages the result in a temporary folder outside the
 * workspace: `dist/` plus a `node_modules` holding only the dependencies `dist/package.json` lists, linked to
 * the installed copies of exactly those versions. A dependency the bundle needs but does not list fails to
 * load there, as it would in the image.
 */
export async function stageAppBundle(app: string): Promise<StagedBundle> {
  const appDir = join(ROOT, "apps", app);
  const dir = mkdtempSync(join(tmpdir(), `${app}-bundle-`));
  try {
    await run(process.execPath, ["--input-type=module", "-e", BUILD, dir], { cwd: appDir, timeout: 120_000 });
    const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
    };
    for (const [name, version] of Object.entries(manifest.dependencies)) {
      const copy = installedCopies(name).find(
        (folder) =>
          (JSON.parse(readFileSync(join(folder, "package.json"), "utf8")) as { version: string }).version === version,
      );
      if (copy === undefined) throw new Error(`${name}@${version} is listed by the bundle but not installed`);
      const link = join(dir, "node_modules", name);
      mkdirSync(dirname(link), { recursive: true });
      symlinkSync(copy, link, "dir");
    }
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return { dir, main: join(dir, "main.js"), remove: () => rmSync(dir, { recursive: true, force: true }) };
}
