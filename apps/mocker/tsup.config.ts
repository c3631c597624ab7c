import { appBuild } from "../../tools/tsup-app.js";

// `node dist/main.js` runs the mocker (`bin/mocker.js` runs it, or the sources in a checkout without a build);
// `dist/index.js` is `startMocker` for programs that embed it.
export default appBuild({ entry: { main: "src/main.ts", index: "src/index.ts" }, tokenizerPool: true });
