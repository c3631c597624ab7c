import { join } from "node:path";
import { loadSync, type PackageDefinition } from "@grpc/proto-loader";
import { describe, expect, it } from "vitest";
import {
  BodySendMode,
  PROCESS_METHOD_PATH,
  decodeProcessingRequest,
  decodeProcessingResponse,
  encodeProcessingRequest,
  encodeProcessingResponse,
  extProcPackageDefinition,
  jsonToStruct,
  structToJson,
  upstreamProtoRoot,
} from "../src/index.js";

interface FieldDescriptor {
  name: string;
  number: number;
  label: string;
  type: string;
  typeName: string;
}
interface MessageDescriptor {
  field: FieldDescriptor[];
  enumType: Array<{ name: string; value: Array<{ name: string; number: number }> }>;
}

const upstream: PackageDefinition = loadSync("envoy/service/ext_proc/v3/external_processor.proto", {
  keepCase: true,
  includeDirs: ["envoy-api", "xds", "googleapis", "protoc-gen-validate"].map((d) => join(upstreamProtoRoot(), d)),
});
const ours = extProcPackageDefinition();

function message(definition: PackageDefinition, name: string): MessageDescriptor {
  const entry = definition[name] as { format?: string; type?: MessageDescriptor } | undefined;
  if (entry?.format !== "Protocol Buffer 3 DescriptorProto") throw new Error(`${name} is not a message`);
  return entry.type!;
}

/** A field's wire identity: number, type, label and type name. */
function shape(field: FieldDescriptor) {
  return { number: field.number, type: field.type, label: field.label, typeName: field.typeName };
}

const sharedMessages = Object.keys(upstream).filter(
  (name) =>
    (name.startsWith("envoy.service.ext_proc.v3.") ||
      name === "envoy.extensions.filters.http.ext_proc.v3.ProcessingMode") &&
    (upstream[name] as { format?: string }).format === "Protocol Buffer 3 DescriptorProto",
);

describe("wire compatibility with the upstream copy in @grpc/grpc-js-xds", () => {
  it("finds the shared messages in the package (the check is not vacuous)", () => {
    expect(sharedMessages).toEqual(
      expect.arrayContaining([
        "envoy.service.ext_proc.v3.ProcessingRequest",
        "envoy.service.ext_proc.v3.ProcessingResponse",
        "envoy.service.ext_proc.v3.CommonResponse",
        "envoy.service.ext_proc.v3.ImmediateResponse",
        "envoy.service.ext_proc.v3.BodyMutation",
        "envoy.extensions.filters.http.ext_proc.v3.ProcessingMode",
      ]),
    );
    expect(sharedMessages.length).toBeGreaterThanOrEqual(14);
  });

  it.each(sharedMessages)("%s: every upstream field has the same number, type and label here", (name) => {
    const theirs = message(upstream, name);
    const mine = message(ours, name);
    for (const field of theirs.field) {
      const match = mine.field.find((f) => f.name === field.name);
      expect(match, `${name}.${field.name} missing`).toBeDefined();
      expect(shape(match!), `${name}.${field.name}`).toEqual(shape(field));
    }
    for (const enumType of theirs.enumType) {
      const mineEnum = mine.enumType.find((e) => e.name === enumType.name);
      expect(mineEnum, `${name}.${enumType.name} missing`).toBeDefined();
      for (const value of enumType.value) {
        expect(
          mineEnum!.value.find((v) => v.name === value.name)?.number,
          `${name}.${enumType.name}.${value.name}`,
        ).toBe(value.number);
      }
    }
  });

  it("keeps the gRPC path and streaming shape of the service", () => {
    const theirs = upstream["envoy.service.ext_proc.v3.ExternalProcessor"] as unknown as Record<
      string,
      { path: string; requestStream: boolean; responseStream: boolean }
    >;
    const mine = ours["envoy.service.ext_proc.v3.ExternalProcessor"] as unknown as typeof theirs;
    expect(mine["Process"]!.path).toBe(PROCESS_METHOD_PATH);
    expect(theirs["Process"]!.path).toBe(PROCESS_METHOD_PATH);
    expect(mine["Process"]!.requestStream && mine["Process"]!.responseStream).toBe(true);
  });

  it("adds the newer fields with Envoy's numbers (absent from the package's older copy)", () => {
    const fieldNumber = (definition: PackageDefinition, msg: string, field: string) =>
      message(definition, msg).field.find((f) => f.name === field)?.number;
    const expected: Array<[string, string, number]> = [
      ["envoy.service.ext_proc.v3.ProcessingRequest", "protocol_config", 11],
      ["envoy.service.ext_proc.v3.ProtocolConfiguration", "request_body_mode", 1],
      ["envoy.service.ext_proc.v3.ProtocolConfiguration", "response_body_mode", 2],
      ["envoy.service.ext_proc.v3.ProtocolConfiguration", "send_body_without_waiting_for_header_response", 3],
      ["envoy.service.ext_proc.v3.ProcessingResponse", "streamed_immediate_response", 11],
      ["envoy.service.ext_proc.v3.ProcessingResponse", "request_drain", 12],
      ["envoy.service.ext_proc.v3.BodyMutation", "streamed_response", 3],
      ["envoy.service.ext_proc.v3.StreamedBodyResponse", "body", 1],
      ["envoy.service.ext_proc.v3.StreamedBodyResponse", "end_of_stream", 2],
      ["envoy.service.ext_proc.v3.HttpBody", "end_of_stream_without_message", 3],
      ["envoy.service.ext_proc.v3.HttpBody", "grpc_message_compressed", 4],
    ];
    for (const [msg, field, number] of expected) expect(fieldNumber(ours, msg, field), `${msg}.${field}`).toBe(number);
    expect(fieldNumber(upstream, "envoy.service.ext_proc.v3.ProcessingRequest", "protocol_config")).toBeUndefined();
    const modes = message(ours, "envoy.extensions.filters.http.ext_proc.v3.ProcessingMode").enumType.find(
      (e) => e.name === "BodySendMode",
    )!;
    expect(Object.fromEntries(modes.value.map((v) => [v.name, v.number]))).toEqual(BodySendMode);
  });
});

describe("encoding", () => {
  it("round-trips a request with protocol_config, raw header values and filter metadata", () => {
    const bytes = encodeProcessingRequest({
      request_headers: {
        headers: { headers: [{ key: ":path", raw_value: Buffer.from("/v1/models") }] },
        end_of_stream: true,
      },
      protocol_config: {
        request_body_mode: BodySendMode.FULL_DUPLEX_STREAMED,
        response_body_mode: BodySendMode.FULL_DUPLEX_STREAMED,
      },
      metadata_context: {
        filter_metadata: {
          "envoy.lb.subset_hint": jsonToStruct({ "x-gateway-destination-endpoint-subset": ["10.0.0.1:8000"] }),
        },
      },
    });
    const decoded = decodeProcessingRequest(bytes);
    expect(decoded.request).toBe("request_headers");
    expect(decoded.protocol_config).toEqual({ request_body_mode: 4, response_body_mode: 4 });
    expect(Buffer.from(decoded.request_headers!.headers!.headers![0]!.raw_value!).toString()).toBe("/v1/models");
    expect(structToJson(decoded.metadata_context!.filter_metadata!["envoy.lb.subset_hint"])).toEqual({
      "x-gateway-destination-endpoint-subset": ["10.0.0.1:8000"],
    });
  });

  it("leaves absent fields absent (no protocol_config means an older data plane)", () => {
    const decoded = decodeProcessingRequest(encodeProcessingRequest({ request_body: { body: Buffer.from("x") } }));
    expect(decoded.protocol_config).toBeUndefined();
    expect(decoded.request).toBe("request_body");
  });

  it("encodes a streamed body response on field 3 of BodyMutation", () => {
    const bytes = encodeProcessingResponse({
      request_body: {
        response: { body_mutation: { streamed_response: { body: Buffer.from("abc"), end_of_stream: true } } },
      },
    });
    // ProcessingResponse.request_body (3, LEN) > BodyResponse.response (1) > CommonResponse.body_mutation (3) >
    // BodyMutation.streamed_response (3): tag bytes 0x1a, 0x0a, 0x1a, 0x1a.
    expect([bytes[0], bytes[2], bytes[4], bytes[6]]).toEqual([0x1a, 0x0a, 0x1a, 0x1a]);
    const decoded = decodeProcessingResponse(bytes);
    expect(decoded.request_body?.response?.body_mutation?.mutation).toBe("streamed_response");
  });

  it("rejects malformed protobuf with an exception (never a partial message)", () => {
    expect(() => decodeProcessingRequest(Buffer.from([0x12, 0xff, 0xff, 0xff]))).toThrow();
  });
});
