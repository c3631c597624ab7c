export { Epp, replicaLease, type EppOptions } from "./epp.js";
export { EppConfigError, eppConfigFromEnv, type EppConfig, type WorkerSource } from "./config.js";
export {
  DEFAULT_EPP_SETTINGS,
  EPP_ENVIRONMENT,
  EPP_SETTINGS,
  EPP_VARIABLE_NAMES,
  type EnvironmentVariable,
  type EppSettings,
} from "./environment.js";
export { EppPicker, routingHeaders, type PickerOptions } from "./picker.js";
export { BookedRequest } from "./booked-request.js";
export { EppMetrics, type MetricSources } from "./metrics.js";
export { PROBE_PATH, ProbeServer, type ProbeCandidate, type ProbeOptions } from "./probe.js";
export { RemoteTokenizer, RemoteTokenizerError, type RemoteTokenizerOptions } from "./remote-tokenizer.js";
export { PoolRegistry } from "./pools.js";
export {
  MAX_METADATA_BYTES,
  MAX_METADATA_ENTRIES,
  MAX_SLO_TTFT_MS,
  kindOfPath,
  readControls,
  type RequestControls,
} from "./request-controls.js";
export { rejectionOf } from "./rejections.js";
export { startTracing } from "./tracing.js";
