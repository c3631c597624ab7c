export { freePort } from "./ports.js";
export { NatsServer, type NatsServerOptions } from "./nats-server.js";
export { waitFor } from "./wait.js";
export { TestWorker, type SeenRequest, type TestWorkerOptions } from "./openai-worker.js";
