export { startMocker, DEFAULT_MODEL } from "./mocker.js";
export { CliError, parseCli, usage } from "./cli.js";
export type { InjectedFailure, MockerHandle, MockerOptions, MockerWorker, ReceivedRequest } from "./types.js";
