export { freePort, freePortRun, portIsFree } from "./ports.js";
export { NatsServer, type NatsServerOptions } from "./nats-server.js";
export { waitFor } from "./wait.js";
export { TestWorker, type SeenRequest, type TestWorkerOptions } from "./openai-worker.js";
export { startProcess, type RunningProcess } from "./process.js";
export { stageAppBundle, type StagedBundle } from "./bundle.js";
