import { defineConfig } from "tsup";

// The library and the `dynamo-discovery` command (the `bin` of package.json): the command runs on
// plain Node from the build, with no TypeScript loader.
export default defineConfig({
  entry: { index: "src/index.ts", cli: "src/cli.ts" },
  format: ["esm"],
  dts: { entry: { index: "src/index.ts" } },
  sourcemap: true,
  clean: true,
  target: "node20",
});
