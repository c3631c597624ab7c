import { appBuild } from "../../tools/tsup-app.js";

// `node dist/main.js` runs the endpoint picker; the ext_proc protos and the tokenizer pool's worker ship beside it.
export default appBuild({ entry: { main: "src/main.ts" }, assets: ["ext-proc"], tokenizerPool: true });
