import { describe, expect, it } from "vitest";
import { GrpcCode, type RequestRouter, type RouteDecision, type RouteRequest } from "../src/index.js";
import { RecordingRouter, chatBody, postHeaders } from "./helpers.js";
import { newStream, requestBody, requestHeaders, responseBody, responseHeaders, setHeadersOf } from "./messages.js";

const POOL = ["10.0.0.1:8000", "10.0.0.2:8000"];

/** A router whose decisions are resolved by the test. */
class DeferredRouter implements RequestRouter {
  readonly pending: Array<{ request: RouteRequest; signal: AbortSignal; resolve: (d: RouteDecision) => void }> = [];
  readonly inner = new RecordingRouter(POOL);
  route(request: RouteRequest, signal: AbortSignal): Promise<RouteDecision> {
    return new Promise((resolve) => this.pending.push({ request, signal, resolve }));
  }
  /** Resolves the oldest pending decision with the recording router's choice. */
  decide(): void {
    const next = this.pending.shift()!;
    next.resolve(this.inner.route(next.request, next.signal));
  }
}

const tick = () => new Promise((r) => setImmediate(r));

function routed(router: RequestRouter = new RecordingRouter(POOL)) {
  const harness = newStream(router);
  harness.stream.receive(requestHeaders(postHeaders()));
  harness.stream.receive(requestBody(chatBody("hi", { stream: true }), true));
  return harness;
}

const SSE = "text/event-stream";
function sseEvent(payload: object | string): string {
  return `data: ${typeof payload === "string" ? payload : JSON.stringify(payload)}\n\n`;
}
function delta(content: string) {
  return { choices: [{ index: 0, delta: { content } }] };
}

describe("asynchronous decisions", () => {
  it("queues messages that arrive while the decision is pending and answers in order", async () => {
    const router = new DeferredRouter();
    const { stream, sink } = newStream(router);
    stream.receive(requestHeaders(postHeaders()));
    stream.receive(requestBody(chatBody("hi"), false));
    stream.receive({ request_trailers: { trailers: { headers: [] } } });
    expect(sink.responses).toEqual([]);
    stream.receive(responseHeaders(200));
    router.decide();
    await tick();
    expect(sink.kinds()).toEqual(["request_headers", "request_body", "request_trailers", "response_headers"]);
  });

  it("abandons a pick when the gateway leaves first: abort signal, booking freed once, no other callback", async () => {
    const router = new DeferredRouter();
    const { stream, sink, summaries } = newStream(router);
    stream.receive(requestHeaders(postHeaders()));
    stream.receive(requestBody(chatBody("hi"), true));
    const { signal } = router.pending[0]!;
    stream.close("cancelled");
    expect(signal.aborted).toBe(true);
    router.decide();
    await tick();
    stream.close("cancelled");
    expect(router.inner.events.map((e) => e.kind)).toEqual(["end"]);
    expect(router.inner.ends()[0]!.outcome.reason).toBe("abandoned");
    expect(sink.responses).toEqual([]);
    expect(summaries).toHaveLength(1);
    expect(summaries[0]!.outcome).toBe("incomplete");
  });
});

describe("request lifecycle", () => {
  it("frees once when the response completes and the gateway then resets the stream (CANCELLED)", () => {
    const router = new RecordingRouter(POOL);
    const { stream, summaries, advance } = routed(router);
    advance(40);
    stream.receive(responseHeaders(200, [["content-type", "application/json"]]));
    stream.receive(responseBody('{"usage":{"prompt_tokens":5,"completion_tokens":2}}', true));
    stream.close("cancelled");
    stream.close("end");
    const ends = router.ends();
    expect(ends).toHaveLength(1);
    expect(ends[0]!.outcome).toMatchObject({
      reason: "complete",
      status: 200,
      usage: { promptTokens: 5, completionTokens: 2 },
    });
    expect(summaries).toHaveLength(1);
    expect(summaries[0]).toMatchObject({
      outcome: "response_eos",
      responseStatus: 200,
      endpoints: [POOL[0]],
      firstChunkMs: 40,
    });
    expect(ends[0]!.outcome.firstChunkMs).toBe(40);
  });

  it("frees once with reason cancelled when the client leaves after the pick, before the response", () => {
    const router = new RecordingRouter(POOL);
    const { stream, summaries } = routed(router);
    stream.close("cancelled");
    stream.close("cancelled");
    expect(router.events.map((e) => e.kind)).toEqual(["end"]);
    expect(router.ends()[0]!.outcome.reason).toBe("cancelled");
    expect(summaries[0]!.outcome).toBe("incomplete");
  });

  it("frees with reason error when the transport fails mid-response", () => {
    const router = new RecordingRouter(POOL);
    const { stream, summaries } = routed(router);
    stream.receive(responseHeaders(200, [["content-type", SSE]]));
    stream.receive(responseBody(sseEvent(delta("a")), false));
    stream.close("error");
    expect(router.ends().map((e) => e.outcome.reason)).toEqual(["error"]);
    expect(summaries[0]!.outcome).toBe("ext_proc_error");
  });

  it("classifies an upstream error status", () => {
    const { stream, summaries } = routed();
    stream.receive(responseHeaders(503, [], { eos: true }));
    stream.close("cancelled");
    expect(summaries[0]!.outcome).toBe("upstream_http_error");
  });

  it("keeps callbacks best effort: a throwing or rejecting lifecycle never breaks the stream", async () => {
    const router: RequestRouter = {
      route: () => ({
        type: "route",
        endpoints: ["10.0.0.1:8000"],
        lifecycle: {
          prefillComplete: () => {
            throw new Error("router down");
          },
          end: () => Promise.reject(new Error("router down")) as unknown as void,
        },
      }),
    };
    const { stream, sink } = routed(router);
    stream.receive(responseHeaders(200));
    stream.receive(responseBody("abc", true));
    await tick();
    expect(sink.finished).toBeUndefined();
    expect(sink.kinds()).toEqual(["request_headers", "request_body", "response_headers", "response_body"]);
  });
});

describe("response path", () => {
  it("marks prefill complete once, on the first non-empty chunk, after forwarding it", () => {
    const events: string[] = [];
    const router = new RecordingRouter(POOL);
    const { stream, sink } = routed({
      route: (request, signal) => {
        const decision = router.route(request, signal) as Extract<RouteDecision, { type: "route" }>;
        return {
          ...decision,
          lifecycle: {
            ...decision.lifecycle!,
            prefillComplete: () => events.push(`prefill after ${sink.bodyChunks("response_body").length} chunk(s)`),
          },
        };
      },
    });
    stream.receive(responseHeaders(200, [["content-type", SSE]]));
    stream.receive(responseBody("", false));
    expect(events).toEqual([]);
    stream.receive(responseBody(sseEvent(delta("a")), false));
    stream.receive(responseBody(sseEvent(delta("b")), false));
    expect(events).toEqual(["prefill after 1 chunk(s)"]);
  });

  it("counts generated tokens from SSE events split across chunks and reports progress", () => {
    const router = new RecordingRouter(POOL);
    const { stream, sink } = routed(router);
    stream.receive(responseHeaders(200, [["content-type", "text/event-stream; charset=utf-8"]]));
    const text =
      sseEvent(delta("Hel")) +
      sseEvent(delta("lo")) +
      sseEvent(delta("")) +
      sseEvent({ choices: [{ index: 0, delta: { reasoning_content: "hmm" } }] }) +
      sseEvent({ choices: [{ index: 0, delta: { tool_calls: [{ index: 0 }] } }] }) +
      sseEvent({ choices: [{ index: 0, text: "legacy" }] }) +
      sseEvent({
        choices: [],
        usage: {
          prompt_tokens: 10,
          completion_tokens: 7,
          total_tokens: 17,
          prompt_tokens_details: { cached_tokens: 4 },
        },
      }) +
      sseEvent("[DONE]");
    for (let i = 0; i < text.length; i += 7) stream.receive(responseBody(text.slice(i, i + 7), false));
    stream.receive(responseBody("", true));
    const progress = router.events
      .filter((e) => e.kind === "outputProgress")
      .map((e) => (e as { generated: number }).generated);
    expect(progress).toEqual([1, 2, 3, 4, 5, 7]);
    expect(router.ends()[0]!.outcome).toMatchObject({
      generatedTokens: 7,
      usage: { promptTokens: 10, completionTokens: 7, totalTokens: 17, cachedTokens: 4 },
    });
    expect(Buffer.concat(sink.bodyChunks("response_body").map((c) => c.body)).toString()).toBe(text);
    expect(sink.bodyChunks("response_body").at(-1)!.eos).toBe(true);
  });

  it("reads usage from the tail of a large non-streaming response and forwards every byte", () => {
    const router = new RecordingRouter(POOL);
    const { stream, sink } = routed(router);
    stream.receive(responseHeaders(200, [["content-type", "application/json"]]));
    const body = Buffer.from(
      JSON.stringify({
        choices: [{ message: { content: 'says "usage": {"prompt_tokens": 1} ' + "z".repeat(300_000) } }],
        usage: {
          prompt_tokens: 196,
          completion_tokens: 29,
          total_tokens: 225,
          prompt_tokens_details: { cached_tokens: 128 },
        },
      }),
    );
    for (let i = 0; i < body.length; i += 70_000)
      stream.receive(responseBody(body.subarray(i, i + 70_000), i + 70_000 >= body.length));
    const chunks = sink.bodyChunks("response_body");
    expect(chunks.every((c) => c.body.length <= 62_000)).toBe(true);
    expect(Buffer.concat(chunks.map((c) => c.body)).equals(body)).toBe(true);
    expect(router.ends()[0]!.outcome.usage).toEqual({
      promptTokens: 196,
      completionTokens: 29,
      totalTokens: 225,
      cachedTokens: 128,
    });
    expect(router.ends()[0]!.outcome.generatedTokens).toBe(0);
  });

  it("completes on response trailers", () => {
    const router = new RecordingRouter(POOL);
    const { stream, sink } = routed(router);
    stream.receive(responseHeaders(200));
    stream.receive(responseBody("{}", false));
    stream.receive({ response_trailers: { trailers: { headers: [] } } });
    expect(sink.kinds().at(-1)).toBe("response_trailers");
    expect(router.ends()[0]!.outcome.reason).toBe("complete");
  });

  it("reports the served endpoint, flags a mismatch, and echoes it only with conformance hooks", () => {
    for (const hooks of [false, true]) {
      const router = new RecordingRouter(POOL);
      const { stream, sink, summaries } = newStream(router, { conformanceHooks: hooks });
      stream.receive(requestHeaders(postHeaders()));
      stream.receive(requestBody(chatBody("hi"), true));
      stream.receive(
        responseHeaders(200, [], {
          metadata: { "envoy.lb": { "x-gateway-destination-endpoint-served": ["10.0.0.1:8000", "10.0.0.2:8000"] } },
        }),
      );
      const started = router.events.find((e) => e.kind === "responseStarted");
      expect(started).toMatchObject({ servedEndpoint: "10.0.0.2:8000", servedMismatch: true });
      const set = setHeadersOf(sink.responses.at(-1)!.response_headers!.response!.header_mutation);
      expect(set.get("x-conformance-test-served-endpoint")).toBe(hooks ? "10.0.0.2:8000" : undefined);
      stream.close("cancelled");
      expect(summaries[0]).toMatchObject({ servedEndpoint: "10.0.0.2:8000", servedMismatch: true });
    }
  });

  it("passes a response through when the request phase was skipped", () => {
    const { stream, sink } = newStream(new RecordingRouter(POOL));
    stream.receive(responseHeaders(200));
    stream.receive(responseBody("ok", true));
    expect(sink.kinds()).toEqual(["response_headers", "response_body"]);
  });
});

describe("protocol violations end the stream with INVALID_ARGUMENT", () => {
  it.each([
    ["a request body before the headers", [requestBody("x", true)]],
    ["a message without a phase", [{}]],
    ["request headers twice", [requestHeaders(postHeaders()), requestHeaders(postHeaders())]],
    [
      "a response body before response headers",
      [requestHeaders(postHeaders(), { eos: true }), responseBody("x", true)],
    ],
  ])("%s", (_name, messages) => {
    const router = new RecordingRouter(POOL);
    const { stream, sink } = newStream(router);
    for (const message of messages) stream.receive(message);
    expect(sink.finished?.error?.code).toBe(GrpcCode.INVALID_ARGUMENT);
    stream.receive(requestBody("late", true));
    expect(sink.finishCalls).toBe(1);
  });

  it("frees a booked request on a violation", () => {
    const router = new RecordingRouter(POOL);
    const { stream } = routed(router);
    stream.receive(responseBody("x", false));
    expect(router.ends().map((e) => e.outcome.reason)).toEqual(["error"]);
  });
});
