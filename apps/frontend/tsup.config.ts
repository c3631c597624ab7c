import { appBuild } from "../../tools/tsup-app.js";

// `node dist/main.js` (the `dynamo-frontend` bin) runs the sidecar; it tokenizes locally when the picker sent no tokens.
export default appBuild({ entry: { main: "src/main.ts" }, tokenizerPool: true, bin: true });
