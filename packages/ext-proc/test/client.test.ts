import { Server, ServerCredentials, status as GrpcStatus, type ServerDuplexStream } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import {
  ExtProcClient,
  HeaderList,
  MutationError,
  applyHeaderMutation,
  externalProcessorService,
  jsonToStruct,
  setHeaderOption,
  structToJson,
  type ProcessingRequest,
  type ProcessingResponse,
} from "../src/index.js";
import { chatBody, postHeaders } from "./helpers.js";

type Call = ServerDuplexStream<ProcessingRequest, ProcessingResponse>;

/** A scripted ext_proc server: `onMessage` decides what to answer to each inbound message. */
async function scriptedServer(
  onMessage: (message: ProcessingRequest, call: Call, received: ProcessingRequest[]) => void,
) {
  const received: ProcessingRequest[] = [];
  const server = new Server();
  server.addService(externalProcessorService() as never, {
    Process: (call: Call) => {
      call.on("data", (message: ProcessingRequest) => {
        received.push(message);
        onMessage(message, call, received);
      });
      call.on("end", () => call.end());
      call.on("error", () => undefined);
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  const client = new ExtProcClient({ target: `127.0.0.1:${port}`, chunkBytes: 1000 });
  return { client, received, close: () => (client.close(), server.forceShutdown()) };
}

let cleanup: (() => void) | undefined;
afterEach(() => cleanup?.());

const headersAnswer = (mutation: ProcessingResponse["request_headers"]): ProcessingResponse => ({
  request_headers: mutation!,
});
const bodyAnswer = (body: Buffer, eos: boolean): ProcessingResponse => ({
  request_body: { response: { body_mutation: { streamed_response: { body, end_of_stream: eos } } } },
});

describe("header mutations as Envoy applies them", () => {
  const base = new HeaderList([
    [":method", "POST"],
    [":path", "/v1/chat/completions"],
    [":authority", "gw"],
    ["host", "gw"],
    ["x-a", "1"],
    ["x-a", "2"],
    ["x-envoy-original-path", "/p"],
  ]);

  it("reads raw_value only: a value in value alone becomes an empty header", () => {
    const out = applyHeaderMutation(base, { set_headers: [{ header: { key: "x-b", value: "ignored" } }] });
    expect(out.getAll("x-b")).toEqual([""]);
  });

  it("fails the request when both value and raw_value are set", () => {
    expect(() =>
      applyHeaderMutation(base, { set_headers: [{ header: { key: "x-b", value: "v", raw_value: Buffer.from("r") } }] }),
    ).toThrow(MutationError);
  });

  it("overwrites unless the deprecated append is true, ignoring append_action", () => {
    const overwrite = applyHeaderMutation(base, { set_headers: [setHeaderOption("x-a", "3")] });
    expect(overwrite.getAll("x-a")).toEqual(["3"]);
    const appended = applyHeaderMutation(base, {
      set_headers: [{ ...setHeaderOption("x-a", "3"), append: { value: true } }],
    });
    expect(appended.getAll("x-a")).toEqual(["1", "2", "3"]);
    const addIfAbsent = applyHeaderMutation(base, {
      set_headers: [{ header: { key: "x-a", raw_value: Buffer.from("4") }, append_action: 1 }],
    });
    expect(addIfAbsent.getAll("x-a")).toEqual(["4"]);
  });

  it("ignores sets of x-envoy*, :method, :authority, :scheme and host, and removals of pseudo-headers, host and x-envoy*", () => {
    const out = applyHeaderMutation(base, {
      set_headers: [
        setHeaderOption("x-envoy-upstream-alt-stat-name", "x"),
        setHeaderOption(":authority", "evil"),
        setHeaderOption("host", "evil"),
        setHeaderOption(":method", "GET"),
        setHeaderOption(":path", "/v2"),
      ],
      remove_headers: [":path", "host", "x-envoy-original-path", "x-a"],
    });
    expect(out.get(":authority")).toBe("gw");
    expect(out.get("host")).toBe("gw");
    expect(out.get(":method")).toBe("POST");
    expect(out.get(":path")).toBe("/v2");
    expect(out.get("x-envoy-original-path")).toBe("/p");
    expect(out.has("x-envoy-upstream-alt-stat-name")).toBe(false);
    expect(out.has("x-a")).toBe(false);
  });

  it("rejects header values with line breaks", () => {
    expect(() => applyHeaderMutation(base, { set_headers: [setHeaderOption("x-b", "a\r\nb")] })).toThrow(MutationError);
  });
});

describe("ExtProcClient against a scripted processor", () => {
  it("opens with Envoy 1.38's protocol config once, streams the body without waiting and attaches metadata to every message", async () => {
    const server = await scriptedServer((message, call, received) => {
      if (message.request_body?.end_of_stream) {
        call.write(headersAnswer({ response: {} }));
        const body = Buffer.concat(
          received.filter((m) => m.request_body).map((m) => Buffer.from(m.request_body!.body ?? [])),
        );
        call.write(bodyAnswer(body, true));
      }
    });
    cleanup = server.close;
    const exchange = server.client.open({
      filterMetadata: { "envoy.lb.subset_hint": { "x-gateway-destination-endpoint-subset": ["10.0.0.1:1"] } },
    });
    const body = chatBody("z".repeat(3500));
    const result = await exchange.processRequest({ headers: postHeaders(), body });
    expect(result.type === "continue" && result.body!.equals(body)).toBe(true);
    const [first, ...rest] = server.received;
    expect(first!.protocol_config).toMatchObject({ request_body_mode: 4, response_body_mode: 4 });
    expect(first!.protocol_config!.send_body_without_waiting_for_header_response ?? false).toBe(false);
    expect(rest.every((m) => m.protocol_config === undefined)).toBe(true);
    expect(rest.filter((m) => m.request_body).length).toBe(Math.ceil(body.length / 1000));
    expect(rest.filter((m) => m.request_body?.end_of_stream).length).toBe(1);
    for (const m of server.received) {
      expect(structToJson(m.metadata_context!.filter_metadata!["envoy.lb.subset_hint"])).toEqual({
        "x-gateway-destination-endpoint-subset": ["10.0.0.1:1"],
      });
    }
    exchange.close();
  });

  it("returns an ImmediateResponse, with Envoy's 200 when the status is missing", async () => {
    const server = await scriptedServer((message, call) => {
      if (message.request_headers)
        call.write({
          immediate_response: {
            headers: { set_headers: [setHeaderOption("x-why", "because")] },
            body: Buffer.from("local"),
            details: "d",
          },
        });
    });
    cleanup = server.close;
    const exchange = server.client.open();
    const result = await exchange.processRequest({ headers: postHeaders(), body: chatBody("hi") });
    expect(result).toMatchObject({ type: "immediate", status: 200, details: "d" });
    if (result.type === "immediate") {
      expect(result.body.toString()).toBe("local");
      expect(result.headers.get("x-why")).toBe("because");
    }
    exchange.close();
  });

  it("fails on a body answer without streamed_response (spurious in full-duplex mode)", async () => {
    const server = await scriptedServer((message, call) => {
      if (message.request_body?.end_of_stream) {
        call.write(headersAnswer({ response: {} }));
        call.write({ request_body: { response: {} } });
      }
    });
    cleanup = server.close;
    const exchange = server.client.open();
    const result = await exchange.processRequest({ headers: postHeaders(), body: chatBody("hi") });
    expect(result).toMatchObject({ type: "error" });
    expect((result as { message: string }).message).toContain("spurious");
    exchange.close();
  });

  it("fails when the answers come out of order", async () => {
    const server = await scriptedServer((message, call) => {
      if (message.request_headers) call.write(bodyAnswer(Buffer.from("x"), true));
    });
    cleanup = server.close;
    const exchange = server.client.open();
    expect(await exchange.processRequest({ headers: postHeaders(), body: chatBody("hi") })).toMatchObject({
      type: "error",
    });
    exchange.close();
  });

  it("goes on unchanged when the processor closes cleanly without answering", async () => {
    const server = await scriptedServer((message, call) => {
      if (message.request_headers) call.end();
    });
    cleanup = server.close;
    const exchange = server.client.open();
    const body = chatBody("untouched");
    const result = await exchange.processRequest({
      headers: postHeaders(undefined, [["x-k", "v"]]),
      body: [body.subarray(0, 5), body.subarray(5)],
    });
    expect(result.type).toBe("continue");
    if (result.type === "continue") {
      expect(result.body!.equals(body)).toBe(true);
      expect(result.headers.get("x-k")).toBe("v");
      expect(result.clearRouteCache).toBe(false);
    }
    exchange.close();
  });

  it("reports an error status from the processor (Envoy answers 500)", async () => {
    const server = await scriptedServer((message, call) => {
      if (message.request_headers) call.emit("error", { code: GrpcStatus.UNAVAILABLE, details: "down" });
    });
    cleanup = server.close;
    const exchange = server.client.open();
    const result = await exchange.processRequest({ headers: postHeaders(), body: chatBody("hi") });
    expect(result).toMatchObject({ type: "error", grpcCode: GrpcStatus.UNAVAILABLE });
    expect((result as { message: string }).message).toContain("down");
    exchange.close();
  });

  it("merges dynamic metadata by namespace across answers and applies response header mutations", async () => {
    const server = await scriptedServer((message, call) => {
      if (message.request_headers) {
        call.write({
          request_headers: { response: {} },
          dynamic_metadata: jsonToStruct({ "envoy.lb": { a: "1" }, other: { x: true } }),
        });
      }
      if (message.request_body?.end_of_stream)
        call.write({
          ...bodyAnswer(Buffer.from("b"), true),
          dynamic_metadata: jsonToStruct({ "envoy.lb": { b: "2" } }),
        });
      if (message.response_headers)
        call.write({
          response_headers: {
            response: { header_mutation: { set_headers: [setHeaderOption("x-r", "1")], remove_headers: ["server"] } },
          },
        });
    });
    cleanup = server.close;
    const exchange = server.client.open();
    const result = await exchange.processRequest({ headers: postHeaders(), body: chatBody("hi") });
    expect(result.type === "continue" && result.dynamicMetadata).toEqual({
      "envoy.lb": { a: "1", b: "2" },
      other: { x: true },
    });
    const response = await exchange.processResponseHeaders({ status: 201, headers: [["server", "w"]] });
    expect(response.type === "continue" && [...response.headers]).toEqual([
      [":status", "201"],
      ["x-r", "1"],
    ]);
    exchange.close();
  });
});
