import { packageBuild } from "../../tools/tsup-package.js";

// The library and the `dynamo-discovery` command (the `bin` of package.json): the command runs on
// plain Node from the build, with no TypeScript loader.
export default packageBuild({
  entry: { index: "src/index.ts", cli: "src/cli.ts" },
  dts: { entry: { index: "src/index.ts" } },
});
