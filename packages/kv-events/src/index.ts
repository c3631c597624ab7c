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
