import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadSync, type MethodDefinition, type Options, type PackageDefinition } from "@grpc/proto-loader";
import type { ProcessingRequest, ProcessingResponse } from "./messages.js";

/** The gRPC method path of `ExternalProcessor.Process`. */
export const PROCESS_METHOD_PATH = "/envoy.service.ext_proc.v3.ExternalProcessor/Process";
/** Fully qualified name of the ext_proc service (also a health-check service name). */
export const EXT_PROC_SERVICE_NAME = "envoy.service.ext_proc.v3.ExternalProcessor";

const EXTERNAL_PROCESSOR_PROTO = "envoy/service/ext_proc/v3/external_processor.proto";

/**
 * Loader options every ext_proc message goes through: field names as in the .proto files, absent fields
 * left absent (so "no protocol_config" is visible), the set oneof member named in a virtual field,
 * 64-bit integers as strings.
 */
export const PROTO_LOADER_OPTIONS: Options = { keepCase: true, longs: String, defaults: false, oneofs: true };

/** Directory holding this package's own `.proto` files (found from either `src/` or `dist/`). */
export function projectProtoDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, "proto");
    if (existsSync(join(candidate, EXTERNAL_PROCESSOR_PROTO))) return candidate;
    const parent = dirname(dir);
    if (parent === dir)
      throw new Error(`cannot find ${EXTERNAL_PROCESSOR_PROTO} above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/** Root of the upstream protos shipped by `@grpc/grpc-js-xds` (`deps/`). */
export function upstreamProtoRoot(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve("@grpc/grpc-js-xds/package.json")), "deps");
}

/**
 * Include path for loading: the project's directory first, so its `external_processor.proto` and
 * `processing_mode.proto` shadow the older copies in `@grpc/grpc-js-xds`, then that package's Envoy,
 * xDS, googleapis and validate trees for the base types.
 */
export function protoIncludeDirs(): string[] {
  const upstream = upstreamProtoRoot();
  return [
    projectProtoDir(),
    ...["envoy-api", "xds", "googleapis", "protoc-gen-validate"].map((d) => join(upstream, d)),
  ];
}

let cached: PackageDefinition | undefined;

/** The loaded ext_proc package definition (cached). */
export function extProcPackageDefinition(): PackageDefinition {
  cached ??= loadSync(EXTERNAL_PROCESSOR_PROTO, { ...PROTO_LOADER_OPTIONS, includeDirs: protoIncludeDirs() });
  return cached;
}

export type ProcessMethodDefinition = MethodDefinition<ProcessingRequest, ProcessingResponse>;

/** `ExternalProcessor` as a gRPC service definition (for `Server.addService`). */
export function externalProcessorService(): { Process: ProcessMethodDefinition } {
  const service = extProcPackageDefinition()[EXT_PROC_SERVICE_NAME] as unknown as { Process: ProcessMethodDefinition };
  return service;
}

/** Encodes a `ProcessingRequest` (what a data plane sends). */
export function encodeProcessingRequest(message: ProcessingRequest): Buffer {
  return externalProcessorService().Process.requestSerialize(message);
}

/** Decodes a `ProcessingRequest`; throws on malformed protobuf. */
export function decodeProcessingRequest(bytes: Uint8Array): ProcessingRequest {
  return externalProcessorService().Process.requestDeserialize(Buffer.from(bytes));
}

/** Encodes a `ProcessingResponse` (what the processor sends). */
export function encodeProcessingResponse(message: ProcessingResponse): Buffer {
  return externalProcessorService().Process.responseSerialize(message);
}

/** Decodes a `ProcessingResponse`; throws on malformed protobuf. */
export function decodeProcessingResponse(bytes: Uint8Array): ProcessingResponse {
  return externalProcessorService().Process.responseDeserialize(Buffer.from(bytes));
}
