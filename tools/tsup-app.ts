import { cpSync, existsSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig, type Options } from "tsup";
import { bundleManifest } from "./app-manifest.js";

const root = dirname(dirname(fileURLToPath(import.meta.url)));

/** Runtime files a bundled workspace package reads next to its code, copied into the app's `dist/`. */
const PACKAGE_ASSETS = {
  /** The ext_proc `.proto` files, found by walking up from the bundle to a `proto/` folder. */
  "ext-proc": { from: "packages/ext-proc/proto", to: "proto" },
} as const;

export interface AppBuildOptions {
  /** Bundle entries by output name; `main` is the process entry (`node dist/main.js`). */
  readonly entry: Record<string, string>;
  /** Workspace packages whose runtime assets the app needs in `dist/`. */
  readonly assets?: ReadonlyArray<keyof typeof PACKAGE_ASSETS>;
  /** The app loads tokenizers: the tokenizer pool's worker thread becomes `dist/pool-worker.js`. */
  readonly tokenizerPool?: boolean;
  /** `dist/main.js` is a package `bin`: it starts with `#!/usr/bin/env node`. */
  readonly bin?: boolean;
}

/**
 * The build every app shares: one ESM bundle per entry for Node 20 that inlines the workspace packages
 * (`@dynamo/*`, from their sources) and leaves every other dependency external, so `dist/` plus the
 * app's declared `dependencies` is all a container needs. A dependency the bundle imports but the app does
 * not declare is caught by the app's bundle test, which runs `dist/` with plain `node` outside the workspace.
 * `dist/package.json` lists those dependencies pinned to the versions the workspace installed.
 */
export function appBuild(options: AppBuildOptions) {
  const entry: Record<string, string> = { ...options.entry };
  if (options.tokenizerPool) entry["pool-worker"] = join(root, "packages/tokenizer/src/pool-worker.ts");
  const config: Options = {
    entry,
    format: ["esm"],
    platform: "node",
    target: "node20",
    sourcemap: true,
    clean: true,
    dts: false,
    splitting: true,
    noExternal: [/^@dynamo\//],
    // Every bare import other than a workspace package stays a runtime dependency.
    external: [/^(?!@dynamo\/)[^./]/],
    esbuildOptions(esbuild) {
      esbuild.conditions = ["@dynamo/source", ...(esbuild.conditions ?? [])];
    },
    // CommonJS dependencies that are bundled call `require`; give ESM output one.
    banner: {
      js: [
        ...(options.bin ? ["#!/usr/bin/env node"] : []),
        "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
      ].join("\n"),
    },
    esbuildPlugins: [
      {
        name: "copy-package-assets",
        setup(build) {
          build.onEnd(() => {
            const outDir = build.initialOptions.outdir ?? "dist";
            for (const name of options.assets ?? []) {
              const asset = PACKAGE_ASSETS[name];
              const from = join(root, asset.from);
              if (!existsSync(from)) throw new Error(`${from} not found`);
              cpSync(from, join(outDir, asset.to), { recursive: true });
            }
            const manifest = bundleManifest(root, process.cwd());
            writeFileSync(join(outDir, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
          });
        },
      },
    ],
  };
  return defineConfig(config);
}
