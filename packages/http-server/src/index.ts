export { readBody, type BodyRead } from "./body.js";
export { closeServer, listen, portOf, type CloseOptions } from "./server.js";
export { send, sendJson, sendText } from "./send.js";
