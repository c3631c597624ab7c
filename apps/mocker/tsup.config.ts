import { defineConfig } from "tsup";

// One runnable bundle: the workspace packages are compiled in; npm packages with native code, worker
// entries or package-relative files (zeromq, xxhash, piscina, the tokenizer files, NATS, Kubernetes)
// stay external and are declared in package.json. The tokenizer's pool worker is its own entry because
// worker threads load dist/pool-worker.js by file name.
export default defineConfig({
  entry: {
    main: "src/main.ts",
    index: "src/index.ts",
    "pool-worker": "../../packages/tokenizer/src/pool-worker.ts",
  },
  format: ["esm"],
  target: "node20",
  platform: "node",
  sourcemap: true,
  clean: true,
  splitting: true,
  noExternal: [/^@dynamo\//],
  // CommonJS dependencies compiled into the ESM bundle require Node's built-ins.
  banner: {
    js: 'import { createRequire as __mockerRequire } from "node:module"; const require = __mockerRequire(import.meta.url);',
  },
  esbuildOptions(options) {
    options.conditions = ["@dynamo/source"];
  },
});
