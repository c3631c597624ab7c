export {
  VllmDecodeError,
  decodeVllmEventBatch,
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
} from "./vllm-codec.js";
export {
  TRANSLATION_ISSUES,
  VllmEventTranslator,
  storageTierFromMedium,
  type TranslationIssue,
  type VllmTranslatorOptions,
} from "./translate.js";
export { VllmEventIngest, type VllmEventIngestOptions, type VllmPublisherQuirks } from "./ingest.js";
export { RateLimitedLog, defaultLogSink, type LogSink } from "./log.js";
export { RingBuffer } from "./ring-buffer.js";
export { REPLAY_END_SEQ, decodeSeq, encodeSeq, endpointForRank, publisherBinds } from "./zmq-wire.js";
export { ZmqEventPublisher, type ZmqEventPublisherOptions } from "./zmq-publisher.js";
export {
  ZmqEventSubscriber,
  requestReplay,
  type ZmqBatchHandler,
  type ZmqBatchInfo,
  type ZmqEventSubscriberOptions,
  type ZmqResetReason,
  type ZmqSubscriberStats,
  type ZmqWorkerEndpoints,
} from "./zmq-subscriber.js";
export { SyntheticVllmWorker, type SyntheticVllmWorkerOptions } from "./synthetic.js";
export { kvEventStreamName, kvEventSubject, workerQuerySubject } from "./subjects.js";
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
} from "./recovery-protocol.js";
export { ConcurrencyLimit, queryEventRange } from "./nats-request.js";
export {
  BRIDGE_BUFFER_SIZE,
  KvEventBridge,
  defaultFirstEventId,
  type KvEventBridgeOptions,
  type KvEventBridgeStats,
} from "./kv-event-bridge.js";
export {
  DEFAULT_RECOVERY_POLICY,
  KvEventSubscriber,
  type KvEventSubscriberOptions,
  type KvEventSubscriberStats,
  type RecoveryPolicy,
} from "./kv-event-subscriber.js";
export { KvEventPublisher } from "./kv-event-publisher.js";
export { connectEventPlane } from "./nats-connect.js";
export { KV_EVENT_STREAM_MAX_AGE_MS, consumeKvEventStream, ensureKvEventStream } from "./jetstream.js";
