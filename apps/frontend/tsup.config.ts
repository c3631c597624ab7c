import { defineConfig } from "tsup";

// One runnable bundle: the workspace packages are compiled in from their sources (their npm dependencies
// stay external, resolved from node_modules), and the tokenizer's pool worker is its own entry next to
// main.js, where the bundled tokenizer looks for it.
export default defineConfig({
  entry: { main: "src/main.ts", "pool-worker": "../../packages/tokenizer/src/pool-worker.ts" },
  format: ["esm"],
  target: "node20",
  platform: "node",
  sourcemap: true,
  clean: true,
  dts: false,
  noExternal: [/^@dynamo\//],
  esbuildOptions(options) {
    options.conditions = ["@dynamo/source"];
  },
  esbuildPlugins: [
    {
      name: "npm-dependencies-external",
      setup(build) {
        build.onResolve({ filter: /^[^./]/ }, (args) =>
          args.path.startsWith("@dynamo/") ? undefined : { path: args.path, external: true },
        );
      },
    },
  ],
  banner: { js: "#!/usr/bin/env node" },
});
