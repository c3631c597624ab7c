import { describe, expect, it } from "vitest";
import {
  BODY_CHUNK_BYTES,
  ByteBudget,
  BodySendMode,
  GrpcCode,
  InflightLimit,
  reject,
  structToJson,
  type RequestRouter,
  type RouteRequest,
} from "../src/index.js";
import { RecordingRouter, chatBody, postHeaders } from "./helpers.js";
import { metadataContext, requestBody, requestHeaders, newStream, setHeadersOf, subsetHint } from "./messages.js";

const POOL = ["10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"];

function immediateOf(sink: {
  responses: Array<{ immediate_response?: { status?: { code?: number }; body?: Uint8Array; headers?: unknown } }>;
}) {
  const immediate = sink.responses.find((r) => r.immediate_response)?.immediate_response;
  return immediate
    ? { status: immediate.status?.code, body: Buffer.from(immediate.body ?? []).toString(), headers: immediate.headers }
    : undefined;
}

describe("protocol configuration", () => {
  it.each([false, true])(
    "accepts FULL_DUPLEX_STREAMED both ways with send_body_without_waiting_for_header_response=%s",
    (flag) => {
      const router = new RecordingRouter(POOL);
      const { stream, sink } = newStream(router);
      stream.receive(
        requestHeaders(postHeaders(), {
          protocol: {
            request_body_mode: BodySendMode.FULL_DUPLEX_STREAMED,
            response_body_mode: BodySendMode.FULL_DUPLEX_STREAMED,
            send_body_without_waiting_for_header_response: flag,
          },
        }),
      );
      stream.receive(requestBody(chatBody("hello"), true));
      expect(sink.finished).toBeUndefined();
      expect(sink.kinds()).toEqual(["request_headers", "request_body"]);
      expect(router.requests).toHaveLength(1);
    },
  );

  it.each([
    ["STREAMED", BodySendMode.STREAMED, BodySendMode.FULL_DUPLEX_STREAMED, ["processing_mode.request_body_mode"]],
    [
      "BUFFERED",
      BodySendMode.BUFFERED,
      BodySendMode.BUFFERED,
      ["processing_mode.request_body_mode", "processing_mode.response_body_mode"],
    ],
    ["response NONE", BodySendMode.FULL_DUPLEX_STREAMED, BodySendMode.NONE, ["processing_mode.response_body_mode"]],
    ["GRPC", BodySendMode.GRPC, BodySendMode.FULL_DUPLEX_STREAMED, ["processing_mode.request_body_mode"]],
    [
      "BUFFERED_PARTIAL",
      BodySendMode.BUFFERED_PARTIAL,
      BodySendMode.STREAMED,
      ["processing_mode.request_body_mode", "processing_mode.response_body_mode"],
    ],
  ])("rejects %s with FAILED_PRECONDITION naming the field to change", (_name, request, response, fields) => {
    const router = new RecordingRouter(POOL);
    const { stream, sink, summaries } = newStream(router);
    stream.receive(
      requestHeaders(postHeaders(), { protocol: { request_body_mode: request, response_body_mode: response } }),
    );
    expect(sink.finished?.error?.code).toBe(GrpcCode.FAILED_PRECONDITION);
    for (const field of fields) expect(sink.finished?.error?.message).toContain(field);
    expect(sink.finished?.error?.message).toContain("FULL_DUPLEX_STREAMED");
    expect(sink.responses).toEqual([]);
    expect(router.requests).toEqual([]);
    stream.close("end");
    expect(summaries[0]?.outcome).toBe("ext_proc_error");
  });

  it("skips validation when the data plane sends no protocol_config (Envoy before 1.32)", () => {
    const router = new RecordingRouter(POOL);
    const { stream, sink } = newStream(router);
    stream.receive(requestHeaders(postHeaders(), { protocol: null }));
    stream.receive(requestBody(chatBody("hi"), true));
    expect(sink.kinds()).toEqual(["request_headers", "request_body"]);
  });

  it("rejects observability mode, whose answers the gateway would ignore", () => {
    const { stream, sink } = newStream(new RecordingRouter(POOL));
    stream.receive({ ...requestHeaders(postHeaders()), observability_mode: true });
    expect(sink.finished?.error?.code).toBe(GrpcCode.FAILED_PRECONDITION);
    expect(sink.finished?.error?.message).toContain("observability_mode");
  });
});

describe("request headers and body", () => {
  it("holds the headers response until the body ends, then sends headers before the body", () => {
    const router = new RecordingRouter(POOL);
    const { stream, sink } = newStream(router);
    const body = chatBody("x".repeat(500));
    stream.receive(requestHeaders(postHeaders()));
    for (let i = 0; i < body.length - 10; i += 10) {
      stream.receive(requestBody(body.subarray(i, i + 10), false));
      expect(sink.responses).toEqual([]);
    }
    stream.receive(requestBody(body.subarray(body.length - (body.length % 10) || body.length - 10), true));
    expect(router.requests).toHaveLength(1);
    expect(router.requests[0]!.body!.bytes.equals(body)).toBe(true);
    expect(sink.kinds()).toEqual(["request_headers", "request_body"]);
    expect(Buffer.concat(sink.bodyChunks("request_body").map((c) => c.body)).equals(body)).toBe(true);
  });

  it("routes a body split over many chunks as one JSON document", () => {
    const router = new RecordingRouter(POOL);
    const { stream, sink } = newStream(router);
    const body = chatBody("split me", { max_tokens: 30 });
    stream.receive(requestHeaders(postHeaders()));
    for (let i = 0; i < body.length; i++) stream.receive(requestBody(body.subarray(i, i + 1), i === body.length - 1));
    expect(router.requests[0]!.body!.json).toMatchObject({ max_tokens: 30, messages: [{ content: "split me" }] });
    expect(sink.bodyChunks("request_body")).toHaveLength(1);
  });

  it("sets the destination, routing headers, metadata and clear_route_cache as Envoy reads them", () => {
    const router = new RecordingRouter(POOL);
    const { stream, sink } = newStream(router);
    stream.receive(requestHeaders(postHeaders()));
    stream.receive(requestBody(chatBody("hi"), true));
    const response = sink.responses[0]!;
    const common = response.request_headers!.response!;
    expect(common.clear_route_cache).toBe(true);
    const set = common.header_mutation!.set_headers!;
    expect(set[0]!.header!.key).toBe("x-gateway-destination-endpoint");
    for (const option of set) {
      expect(option.header!.value).toBeUndefined();
      expect(option.header!.raw_value!.length).toBeGreaterThan(0);
      expect(option.append).toBeUndefined();
    }
    const headers = setHeadersOf(common.header_mutation);
    expect(headers.get("x-gateway-destination-endpoint")).toBe(POOL[0]);
    expect(headers.get("x-dynamo-worker-instance-id")).toBe("1");
    expect(headers.get("x-worker-instance-id")).toBe("1");
    expect(structToJson(response.dynamic_metadata)).toEqual({
      "envoy.lb": { "x-gateway-destination-endpoint": POOL[0] },
    });
  });

  it("strips client-sent routing headers from what the router sees and from the forwarded request", () => {
    const router = new RecordingRouter(POOL);
    const { stream, sink } = newStream(router);
    const spoofed: Array<[string, string]> = [
      ["x-worker-instance-id", "999"],
      ["x-prefill-instance-id", "998"],
      ["x-dynamo-worker-instance-id", "999"],
      ["x-dynamo-prefill-instance-id", "998"],
      ["x-dynamo-dp-rank", "7"],
      ["x-dynamo-prefill-dp-rank", "7"],
      ["x-dynamo-routing-mode", "disaggregated"],
      ["x-prefiller-host-port", "6.6.6.6:1"],
      ["x-gateway-destination-endpoint", "6.6.6.6:1"],
      ["x-gateway-inference-objective", "premium"],
    ];
    stream.receive(requestHeaders(postHeaders(undefined, spoofed)));
    stream.receive(requestBody(chatBody("hi"), true));
    const seen = router.requests[0]!.headers;
    for (const name of [
      "x-worker-instance-id",
      "x-prefiller-host-port",
      "x-gateway-destination-endpoint",
      "x-dynamo-dp-rank",
    ]) {
      expect(seen.has(name), name).toBe(false);
    }
    expect(seen.get("x-gateway-inference-objective")).toBe("premium");
    const mutation = sink.responses[0]!.request_headers!.response!.header_mutation!;
    const set = setHeadersOf(mutation);
    expect(set.get("x-worker-instance-id")).toBe("1");
    expect(set.get("x-gateway-destination-endpoint")).toBe(POOL[0]);
    const removed = new Set(mutation.remove_headers);
    for (const name of [
      "x-prefill-instance-id",
      "x-dynamo-prefill-instance-id",
      "x-dynamo-prefill-dp-rank",
      "x-prefiller-host-port",
      "x-gateway-inference-objective",
      "x-gateway-destination-endpoint-subset",
    ]) {
      expect(removed.has(name), name).toBe(true);
    }
    for (const name of set.keys()) expect(removed.has(name), `${name} both set and removed`).toBe(false);
    expect(removed.has("content-length")).toBe(false);
  });

  it("sets x-prefiller-host-port when the router names a prefill endpoint, and ignores reserved router headers", () => {
    const router: RequestRouter = {
      route: () => ({
        type: "route",
        endpoints: ["10.0.0.9:8000"],
        prefillEndpoint: "10.0.0.8:8000",
        headers: {
          "x-dynamo-routing-mode": "disaggregated",
          ":path": "/evil",
          "x-envoy-original-path": "/evil",
          "content-length": "1",
          "x-gateway-destination-endpoint": "6.6.6.6:1",
          "x-bad-value": "a\r\nb",
        },
      }),
    };
    const { stream, sink } = newStream(router);
    stream.receive(requestHeaders(postHeaders()));
    stream.receive(requestBody(chatBody("hi"), true));
    const mutation = sink.responses[0]!.request_headers!.response!.header_mutation!;
    expect([...setHeadersOf(mutation).entries()]).toEqual([
      ["x-gateway-destination-endpoint", "10.0.0.9:8000"],
      ["x-dynamo-routing-mode", "disaggregated"],
      ["x-prefiller-host-port", "10.0.0.8:8000"],
    ]);
    expect(mutation.remove_headers).not.toContain("x-prefiller-host-port");
  });

  it("injects nvext.token_data keeping model and existing nvext fields", () => {
    const router = new RecordingRouter(POOL, { tokenData: () => [151644, 872, 198] });
    const { stream, sink } = newStream(router);
    stream.receive(requestHeaders(postHeaders()));
    stream.receive(requestBody(chatBody("hi", { nvext: { annotations: ["a"] }, stream: true }), true));
    const forwarded = JSON.parse(Buffer.concat(sink.bodyChunks("request_body").map((c) => c.body)).toString());
    expect(forwarded).toEqual({
      model: "Qwen/Qwen3-0.6B",
      messages: [{ role: "user", content: "hi" }],
      stream: true,
      nvext: { annotations: ["a"], token_data: [151644, 872, 198] },
    });
  });

  it("appends nvext to a body without one, leaving the client's bytes as they were", () => {
    const router = new RecordingRouter(POOL, { tokenData: () => [7, 8] });
    const { stream, sink } = newStream(router);
    const text = '{ "model": "m", "temperature": 1.0, "messages": [{"role": "user", "content": "h\u00e9"}] }\n';
    stream.receive(requestHeaders(postHeaders()));
    stream.receive(requestBody(text, true));
    const forwarded = Buffer.concat(sink.bodyChunks("request_body").map((c) => c.body)).toString();
    expect(forwarded).toBe(text.slice(0, text.lastIndexOf("}")) + ',"nvext":{"token_data":[7,8]}}');
    expect(JSON.parse(forwarded).nvext).toEqual({ token_data: [7, 8] });
  });

  it("takes the token ids as a Uint32Array too (the router service's form)", () => {
    const ids = Uint32Array.from([151644, 872, 4294967295]);
    for (const extra of [{}, { nvext: { annotations: ["a"] } }]) {
      const router = new RecordingRouter(POOL, { tokenData: () => ids });
      const { stream, sink } = newStream(router);
      stream.receive(requestHeaders(postHeaders()));
      stream.receive(requestBody(chatBody("hi", extra), true));
      const forwarded = JSON.parse(Buffer.concat(sink.bodyChunks("request_body").map((c) => c.body)).toString());
      expect(forwarded.nvext.token_data).toEqual([151644, 872, 4294967295]);
    }
  });

  it("writes every id as its decimal digits (one to ten digits), other numbers as String writes them", () => {
    const ids = [0, 7, 42, 999, 1000, 65_535, 100_000, 9_999_999, 12_345_678, 987_654_321, 4_294_967_295];
    const odd = [-3, 2.5, 4_294_967_296, -0];
    for (const [text, tokens] of [
      ['{"model":"m","prompt":"x"}', ids],
      ["{}", ids],
      ['{"prompt":"x"}', odd],
      ['{"prompt":"x"}', []],
      ['{"prompt":"x"}', Uint32Array.from(ids)],
    ] as const) {
      const router = new RecordingRouter(POOL, { tokenData: () => tokens });
      const { stream, sink } = newStream(router);
      stream.receive(requestHeaders(postHeaders()));
      stream.receive(requestBody(text, true));
      const forwarded = Buffer.concat(sink.bodyChunks("request_body").map((c) => c.body)).toString();
      const member = `"nvext":{"token_data":[${Array.from(tokens, (t) => String(t)).join(",")}]}`;
      expect(forwarded).toBe(`${text.slice(0, -1)}${text === "{}" ? "" : ","}${member}}`);
    }
  });

  it("hands the router the body's text next to its bytes and parsed JSON", () => {
    const router = new RecordingRouter(POOL);
    const { stream } = newStream(router);
    const text = '{"model":"m","prompt":"h\u00e9 é"}';
    stream.receive(requestHeaders(postHeaders()));
    stream.receive(requestBody(text, true));
    const body = router.requests[0]!.body!;
    expect(body.text).toBe(text);
    expect(body.bytes.toString("utf8")).toBe(text);
    expect(body.json).toEqual({ model: "m", prompt: "hé é" });
  });

  it.each([
    ["a JSON array", "[1,2,3]"],
    ["nvext that is not an object", JSON.stringify({ model: "m", nvext: "x" })],
  ])("forwards the original bytes when the body is %s", (_name, text) => {
    const router = new RecordingRouter(POOL, { tokenData: () => [1] });
    const { stream, sink } = newStream(router);
    stream.receive(requestHeaders(postHeaders()));
    stream.receive(requestBody(text, true));
    expect(Buffer.concat(sink.bodyChunks("request_body").map((c) => c.body)).toString()).toBe(text);
  });

  it("streams a large rewritten body back in chunks of at most 62,000 bytes, end_of_stream on the last only", () => {
    const tokens = Array.from({ length: 60_000 }, (_, i) => 100_000 + i);
    const router = new RecordingRouter(POOL, { tokenData: () => tokens });
    const { stream, sink } = newStream(router);
    const body = chatBody("y".repeat(150_000));
    stream.receive(requestHeaders(postHeaders()));
    for (let i = 0; i < body.length; i += 16_384)
      stream.receive(requestBody(body.subarray(i, i + 16_384), i + 16_384 >= body.length));
    const chunks = sink.bodyChunks("request_body");
    expect(chunks.length).toBeGreaterThan(3);
    for (const chunk of chunks) expect(chunk.body.length).toBeLessThanOrEqual(BODY_CHUNK_BYTES);
    expect(chunks.slice(0, -1).every((c) => c.body.length === BODY_CHUNK_BYTES && !c.eos)).toBe(true);
    expect(chunks.at(-1)!.eos).toBe(true);
    const forwarded = JSON.parse(Buffer.concat(chunks.map((c) => c.body)).toString());
    expect(forwarded.nvext.token_data).toEqual(tokens);
    expect(forwarded.messages[0].content).toHaveLength(150_000);
  });

  it("routes a header-only request (GET /v1/models) without a body, booking nothing", () => {
    const router = new RecordingRouter(POOL);
    const { stream, sink, summaries } = newStream(router);
    stream.receive(
      requestHeaders(
        [
          [":method", "GET"],
          [":path", "/v1/models"],
        ],
        { eos: true },
      ),
    );
    expect(router.requests[0]!.body).toBeUndefined();
    expect(router.requests[0]!.method).toBe("GET");
    expect(sink.kinds()).toEqual(["request_headers"]);
    expect(
      setHeadersOf(sink.responses[0]!.request_headers!.response!.header_mutation).get("x-gateway-destination-endpoint"),
    ).toBe(POOL[0]);
    stream.receive({
      response_headers: {
        headers: { headers: [{ key: ":status", raw_value: Buffer.from("200") }] },
        end_of_stream: false,
      },
    });
    stream.receive({ response_body: { body: Buffer.from('{"data":[]}'), end_of_stream: true } });
    stream.close("cancelled");
    expect(router.events).toEqual([]);
    expect(summaries[0]).toMatchObject({ outcome: "response_eos", headerOnly: true });
  });

  it("answers an empty body with one empty end-of-stream chunk", () => {
    const router = new RecordingRouter(POOL);
    const { stream, sink } = newStream(router);
    stream.receive(requestHeaders(postHeaders()));
    stream.receive(requestBody("", true));
    expect(router.requests[0]!.body).toBeUndefined();
    expect(sink.bodyChunks("request_body")).toEqual([{ body: Buffer.alloc(0), eos: true }]);
  });

  it("treats request trailers as the end of the body and answers them last", () => {
    const router = new RecordingRouter(POOL);
    const { stream, sink } = newStream(router);
    stream.receive(requestHeaders(postHeaders()));
    stream.receive(requestBody(chatBody("with trailers"), false));
    stream.receive({ request_trailers: { trailers: { headers: [] } } });
    expect(sink.kinds()).toEqual(["request_headers", "request_body", "request_trailers"]);
    expect(sink.bodyChunks("request_body").every((c) => !c.eos)).toBe(true);
  });

  it("uses x-request-id as the request id and mints a UUID per stream as the stream id", () => {
    const router = new RecordingRouter(POOL);
    const a = newStream(router);
    const b = newStream(router);
    for (const { stream } of [a, b]) {
      stream.receive(requestHeaders(postHeaders(undefined, [["x-request-id", "dup"]])));
      stream.receive(requestBody(chatBody("hi"), true));
    }
    expect(router.requests.map((r) => r.requestId)).toEqual(["dup", "dup"]);
    a.stream.close("cancelled");
    expect(router.ends().map((e) => e.streamId)).toEqual([router.requests[0]!.streamId]);
    const { stream } = newStream(router);
    stream.receive(requestHeaders(postHeaders(), { eos: true }));
    expect(router.requests[2]!.requestId).toMatch(/^s\d+$/);
  });
});

describe("errors become ImmediateResponses", () => {
  it("answers invalid JSON with 400 and a message, without asking the router", () => {
    const router = new RecordingRouter(POOL);
    const { stream, sink, summaries } = newStream(router);
    stream.receive(requestHeaders(postHeaders()));
    stream.receive(requestBody('{"model": "m", "messages": [', true));
    expect(immediateOf(sink)).toMatchObject({ status: 400 });
    expect(immediateOf(sink)!.body).toContain("not valid JSON");
    expect(sink.finished).toEqual({});
    expect(router.requests).toEqual([]);
    stream.close("end");
    expect(summaries[0]).toMatchObject({
      outcome: "early_reject",
      rejection: { status: 400, reason: "invalid_request" },
    });
  });

  it("answers a body that is not UTF-8 with 400", () => {
    const { stream, sink } = newStream(new RecordingRouter(POOL));
    stream.receive(requestHeaders(postHeaders()));
    stream.receive(requestBody(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), true));
    expect(immediateOf(sink)).toMatchObject({ status: 400 });
    expect(immediateOf(sink)!.body).toContain("UTF-8");
  });

  it("answers 413 as soon as the body passes the limit, dropping what was buffered", () => {
    const router = new RecordingRouter(POOL);
    const { stream, sink } = newStream(router, { maxRequestBodyBytes: 1000 });
    stream.receive(requestHeaders(postHeaders()));
    stream.receive(requestBody("a".repeat(600), false));
    expect(sink.responses).toEqual([]);
    stream.receive(requestBody("a".repeat(600), false));
    expect(immediateOf(sink)).toMatchObject({ status: 413 });
    expect(immediateOf(sink)!.body).toContain("1000 bytes");
    stream.receive(requestBody("a", true));
    expect(router.requests).toEqual([]);
    expect(sink.responses).toHaveLength(1);
  });

  it("answers 503 when the shared body budget is full, and returns every byte to it", () => {
    const budget = new ByteBudget(1500);
    const router = new RecordingRouter(POOL);
    const body = chatBody("a".repeat(900));
    const first = newStream(router, { bodyBudget: budget });
    first.stream.receive(requestHeaders(postHeaders()));
    first.stream.receive(requestBody(body.subarray(0, -1), false));
    expect(budget.used).toBe(body.length - 1);
    const second = newStream(router, { bodyBudget: budget });
    second.stream.receive(requestHeaders(postHeaders()));
    second.stream.receive(requestBody("b".repeat(400), false));
    second.stream.receive(requestBody("b".repeat(400), false));
    expect(immediateOf(second.sink)).toMatchObject({ status: 503 });
    expect(budget.used).toBe(body.length - 1);
    first.stream.receive(requestBody(body.subarray(-1), true));
    expect(first.sink.kinds()).toEqual(["request_headers", "request_body"]);
    expect(budget.used).toBe(0);
    const third = newStream(router, { bodyBudget: budget });
    third.stream.receive(requestHeaders(postHeaders()));
    third.stream.receive(requestBody("c".repeat(700), false));
    expect(budget.used).toBe(700);
    third.stream.close("cancelled");
    expect(budget.used).toBe(0);
  });

  it("maps a router rejection to its status, with retry-after when asked", () => {
    const router: RequestRouter = { route: () => reject("shed", "request shed; retry later", { retryAfterSecs: 2 }) };
    const { stream, sink } = newStream(router);
    stream.receive(requestHeaders(postHeaders()));
    stream.receive(requestBody(chatBody("hi"), true));
    const immediate = sink.responses[0]!.immediate_response!;
    expect(immediate.status!.code).toBe(429);
    expect(setHeadersOf(immediate.headers).get("retry-after")).toBe("2");
    expect(Buffer.from(immediate.body!).toString()).toBe("request shed; retry later");
  });

  it.each([
    [
      "throws",
      () => {
        throw new Error("boom");
      },
    ],
    ["rejects", () => Promise.reject(new Error("boom"))],
  ])("answers 500 when the router %s", async (_name, route) => {
    const { stream, sink } = newStream({ route } as RequestRouter);
    stream.receive(requestHeaders(postHeaders()));
    stream.receive(requestBody(chatBody("hi"), true));
    await new Promise((r) => setImmediate(r));
    expect(immediateOf(sink)?.status).toBe(500);
    expect(immediateOf(sink)!.body).not.toContain("boom");
  });

  it("answers 503 when the in-flight decision limit is reached", () => {
    const gate = new InflightLimit(1);
    expect(gate.tryAcquire()).toBe(true);
    const router = new RecordingRouter(POOL);
    const { stream, sink } = newStream(router, { gate });
    stream.receive(requestHeaders(postHeaders()));
    stream.receive(requestBody(chatBody("hi"), true));
    expect(immediateOf(sink)).toMatchObject({ status: 503 });
    expect(immediateOf(sink)!.body).toContain("overloaded");
    expect(router.requests).toEqual([]);
    gate.release();
    expect(gate.inflight).toBe(0);
  });
});

describe("subset hint", () => {
  function routeWith(subset: string[] | string, router = new RecordingRouter(POOL)) {
    const { stream, sink } = newStream(router);
    stream.receive(requestHeaders(postHeaders(), { metadata: subsetHint(subset) }));
    stream.receive(requestBody(chatBody("hi"), true));
    return {
      router,
      sink,
      destination: setHeadersOf(sink.responses[0]?.request_headers?.response?.header_mutation).get(
        "x-gateway-destination-endpoint",
      ),
    };
  }

  it("routes only inside a matching subset", () => {
    const destinations = new Set<string>();
    const router = new RecordingRouter(POOL);
    for (let i = 0; i < 6; i++) destinations.add(routeWith([POOL[1]!, POOL[2]!], router).destination!);
    expect([...destinations].sort()).toEqual([POOL[1], POOL[2]].sort());
  });

  it("routes inside the part of a partially matching subset (comma-separated form)", () => {
    const { destination } = routeWith(`10.9.9.9:8000, ${POOL[2]}`);
    expect(destination).toBe(POOL[2]);
  });

  it("matches on the IP as GAIE does", () => {
    const { destination } = routeWith(["10.0.0.3"]);
    expect(destination).toBe(POOL[2]);
  });

  it("answers 503 when no endpoint of the subset is in the pool", () => {
    const { sink } = routeWith(["10.9.9.9:8000"]);
    expect(immediateOf(sink)?.status).toBe(503);
  });

  it("answers 503 for an empty subset list without asking the router", () => {
    const { sink, router } = routeWith([]);
    expect(immediateOf(sink)?.status).toBe(503);
    expect(router.requests).toEqual([]);
  });

  it("treats an empty subset string as no subset", () => {
    expect(routeWith("").destination).toBe(POOL[0]);
  });

  it("refuses a decision outside the subset and frees its booking", () => {
    const ended: string[] = [];
    const router: RequestRouter = {
      route: (request: RouteRequest) => ({
        type: "route",
        endpoints: ["10.0.0.1:8000"],
        lifecycle: { end: (o) => ended.push(`${request.streamId}:${o.reason}`) },
      }),
    };
    const { stream, sink } = newStream(router);
    stream.receive(requestHeaders(postHeaders(), { metadata: subsetHint(["10.0.0.2:8000"]) }));
    stream.receive(requestBody(chatBody("hi"), true));
    expect(immediateOf(sink)?.status).toBe(503);
    expect(ended).toEqual(["s1:error"]);
  });

  it("routes on the latest metadata_context: a body chunk's replaces the headers'", () => {
    const router = new RecordingRouter(POOL);
    const { stream, sink } = newStream(router);
    stream.receive(requestHeaders(postHeaders(), { metadata: subsetHint([POOL[0]!]) }));
    stream.receive({ ...requestBody(chatBody("hi"), true), metadata_context: metadataContext(subsetHint([POOL[1]!])) });
    expect(router.requests[0]!.filterMetadata).toEqual(subsetHint([POOL[1]!]));
    const destination = setHeadersOf(sink.responses[0]!.request_headers!.response!.header_mutation).get(
      "x-gateway-destination-endpoint",
    );
    expect(destination).toBe(POOL[1]);
  });

  it("narrows the pick with the conformance selection header only when the hooks are on", () => {
    for (const hooks of [true, false]) {
      const router = new RecordingRouter(POOL);
      const { stream, sink } = newStream(router, { conformanceHooks: hooks });
      stream.receive(requestHeaders(postHeaders(undefined, [["test-epp-endpoint-selection", "10.0.0.2:8000"]])));
      stream.receive(requestBody(chatBody("hi"), true));
      const destination = setHeadersOf(sink.responses[0]!.request_headers!.response!.header_mutation).get(
        "x-gateway-destination-endpoint",
      );
      expect(destination).toBe(hooks ? POOL[1] : POOL[0]);
    }
  });
});
