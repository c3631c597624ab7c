import { defineConfig } from "tsup";

export default defineConfig({
  // The pool worker is its own entry: worker threads load dist/pool-worker.js by file name.
  entry: ["src/index.ts", "src/pool-worker.ts"],
  format: ["esm"],
  dts: true,
  sourcemap: true,
  clean: true,
  target: "node20",
});
