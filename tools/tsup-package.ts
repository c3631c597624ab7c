import { defineConfig, type Options } from "tsup";

/**
 * The build every workspace package shares: ESM for Node 20 with declarations and source maps, from
 * `src/index.ts` unless the package names its own entries.
 */
export function packageBuild(overrides: Options = {}) {
  return defineConfig({
    entry: ["src/index.ts"],
    format: ["esm"],
    dts: true,
    sourcemap: true,
    clean: true,
    target: "node20",
    ...overrides,
  });
}
