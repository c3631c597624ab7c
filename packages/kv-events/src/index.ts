// vLLM's KV events: wire codec, translation into router events, the per-worker ingest.
export {
  MAX_EVENTS_PER_BATCH,
  VllmDecodeError,
  encodeVllmEventBatch,
  normaliseBlockHash,
  type DecodedVllmBatch,
  type VllmAllBlocksCleared,
  type VllmBlockRemoved,
  type VllmBlockStored,
  type VllmEncodeOptions,
  type VllmEncoding,
  type VllmEventBatch,
  type VllmKvEvent,
} from "./vllm/codec.js";
export {
  MAX_UNFRAMED_PAYLOAD_BYTES,
  declaredEventCount,
  decodeVllmEventBatch,
  readVllmEventBatch,
  type BatchOmissions,
  type BatchStep,
} from "./vllm/batch-steps.js";
export {
  TRANSLATION_ISSUES,
  VllmEventTranslator,
  storageTierFromMedium,
  type TranslationIssue,
  type VllmTranslatorOptions,
} from "./vllm/translate.js";
export {
  INGEST_SLICE_MS,
  VllmEventIngest,
  type VllmEventIngestOptions,
  type VllmPublisherQuirks,
} from "./vllm/ingest.js";
export { storedBatch } from "./vllm/stored-batch.js";

// ZeroMQ: vLLM's transport (PUB + ROUTER replay).
export { REPLAY_END_SEQ, decodeSeq, encodeSeq, endpointForRank, publisherBinds } from "./zmq/wire.js";
export { ZmqEventPublisher, type ZmqEventPublisherOptions } from "./zmq/publisher.js";
export {
  ZmqEventSubscriber,
  requestReplay,
  type ZmqBatchHandler,
  type ZmqBatchInfo,
  type ZmqEventSubscriberOptions,
  type ZmqResetReason,
  type ZmqSubscriberStats,
  type ZmqWorkerEndpoints,
} from "./zmq/subscriber.js";

// NATS: the event plane between bridges and routers (router events as JSON, range queries, durable mode).
export {
  RouterEventDecodeError,
  decodeRouterEventJson,
  encodeRouterEventJson,
  routerEventFromJsonValue,
  routerEventToJsonValue,
} from "./nats/json-codec.js";
export { kvEventStreamName, kvEventSubject, workerQuerySubject } from "./nats/subjects.js";
export {
  RangeProtocolError,
  answerRangeQuery,
  decodeRangeAnswerChunk,
  decodeRangeQuery,
  encodeRangeAnswer,
  encodeRangeQuery,
  type RangeAnswer,
  type RangeAnswerChunk,
  type RangeAnswerKind,
  type RangeQuery,
} from "./nats/range-protocol.js";
export { queryEventRange } from "./nats/range-client.js";
export { connectEventPlane } from "./nats/connect.js";
export { KvEventPublisher } from "./nats/publisher.js";
export {
  BRIDGE_BUFFER_SIZE,
  KvEventBridge,
  defaultFirstEventId,
  type KvEventBridgeOptions,
  type KvEventBridgeStats,
} from "./nats/bridge.js";
export {
  DEFAULT_RECOVERY_POLICY,
  KvEventSubscriber,
  type KvEventSubscriberOptions,
  type KvEventSubscriberStats,
  type RecoveryPolicy,
} from "./nats/subscriber.js";
export { KV_EVENT_STREAM_MAX_AGE_MS, consumeKvEventStream, ensureKvEventStream } from "./nats/jetstream.js";

export type { LogSink } from "./log.js";
