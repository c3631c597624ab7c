import { packageBuild } from "../../tools/tsup-package.js";

// The pool worker is its own entry: worker threads load dist/pool-worker.js by file name.
export default packageBuild({ entry: ["src/index.ts", "src/pool-worker.ts"] });
