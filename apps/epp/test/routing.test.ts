import {
  DESTINATION_ENDPOINT_KEY,
  ENVOY_PROTOCOL_CONFIG,
  LB_NAMESPACE,
  BodySendMode,
  ExtProcClient,
} from "@dynamo/ext-proc";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BLOCK_SIZE,
  MODEL,
  chat,
  closeSharedTokenizer,
  expectFreed,
  idOf,
  postHeaders,
  respond,
  seedRequest,
  send,
  sharedTokenizer,
  startEpp,
  storedBatch,
  type TestEpp,
} from "./support.js";

afterAll(closeSharedTokenizer);

const WORKERS = [
  { name: "w1", http: "127.0.0.1:8001" },
  { name: "w2", http: "127.0.0.2:8002" },
  { name: "w3", http: "127.0.0.3:8003" },
];

async function seedTokens(): Promise<Uint32Array> {
  const tk = await sharedTokenizer().get(MODEL);
  return (await tk.tokenizeRequest("chat", JSON.stringify(seedRequest()))).tokenIds;
}

describe.each([
  ["TLS", true],
  ["h2c", false],
])("the endpoint picker over real gRPC (%s)", (_name, tls) => {
  let t: TestEpp;
  let client: ExtProcClient;
  beforeAll(async () => {
    t = await startEpp({ workers: WORKERS, tls });
    client = t.client;
  });
  afterAll(() => t.close());

  it("routes the seed's chat request to the worker holding its blocks, with both header generations", async () => {
    const tokens = await seedTokens();
    expect(tokens.length).toBe(196); // vLLM's prompt_tokens for this request in the seed
    t.epp.service.applyVllmEvents({ workerId: idOf("w2"), dpRank: 0 }, storedBatch(tokens, 1000n));
    const { exchange, result } = await send(client, seedRequest());
    expect(result.type).toBe("continue");
    if (result.type !== "continue") return;
    const id = idOf("w2").toString();
    expect(result.headers.get(DESTINATION_ENDPOINT_KEY)).toBe("127.0.0.2:8002");
    expect(result.headers.get("x-worker-instance-id")).toBe(id);
    expect(result.headers.get("x-dynamo-worker-instance-id")).toBe(id);
    expect(result.headers.get("x-dynamo-dp-rank")).toBe("0");
    expect(result.headers.get("x-dynamo-routing-mode")).toBe("aggregated");
    expect(result.headers.get("x-prefill-instance-id")).toBeUndefined();
    expect(result.dynamicMetadata[LB_NAMESPACE]).toEqual({ [DESTINATION_ENDPOINT_KEY]: "127.0.0.2:8002" });
    expect(result.clearRouteCache).toBe(true);
    const forwarded = JSON.parse(result.body!.toString()) as Record<string, unknown>;
    expect(forwarded["model"]).toBe(MODEL);
    expect((forwarded["nvext"] as { token_data: number[] }).token_data).toEqual([...tokens]);
    expect(t.epp.service.status().activeBookings).toBe(1);
    await respond(exchange, { prompt_tokens: 196, prompt_tokens_details: { cached_tokens: 192 } });
    await expectFreed(t);
    const line = t.lines.findLast((l) => l["msg"] === "request")!;
    expect(line).toMatchObject({
      worker: id,
      overlapBlocks: Math.floor(196 / BLOCK_SIZE),
      predictedCachedTokens: Math.floor(196 / BLOCK_SIZE) * BLOCK_SIZE,
      actualCachedTokens: 192,
      promptTokens: 196,
      outcome: "complete",
      status: 200,
    });
    expect(typeof line["ttftMs"]).toBe("number");
  });

  it("honours the subset hint: a match, a partial match, and none (503)", async () => {
    for (let i = 0; i < 4; i++) {
      const { exchange, result } = await send(client, chat(`subset ${i}`), { subset: ["127.0.0.3:8003"] });
      expect(result.type === "continue" && result.headers.get(DESTINATION_ENDPOINT_KEY)).toBe("127.0.0.3:8003");
      await respond(exchange);
    }
    const partial = await send(client, chat("partial"), { subset: ["127.0.0.1:8001", "10.9.9.9:8000"] });
    expect(partial.result.type === "continue" && partial.result.headers.get(DESTINATION_ENDPOINT_KEY)).toBe(
      "127.0.0.1:8001",
    );
    await respond(partial.exchange);
    const none = await send(client, chat("none"), { subset: ["10.9.9.9:8000"] });
    expect(none.result).toMatchObject({ type: "immediate", status: 503 });
    expect(none.result.type === "immediate" && none.result.body.toString()).toBe("no endpoints available");
    none.exchange.close();
    await expectFreed(t);
  });

  it("answers 400 for invalid JSON, bad UTF-8 and a body the chat template refuses", async () => {
    for (const body of ["{not json", Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d])]) {
      const { exchange, result } = await send(client, body);
      expect(result).toMatchObject({ type: "immediate", status: 400 });
      exchange.close();
    }
    const { exchange, result } = await send(client, { model: MODEL, messages: "hello" });
    expect(result).toMatchObject({ type: "immediate", status: 400 });
    expect(result.type === "immediate" && result.body.toString()).toMatch(/^invalid request: .*messages/);
    exchange.close();
    await expectFreed(t);
  });

  it("routes a body split across many chunks like a whole one", async () => {
    const body = chat("split ".repeat(500));
    const whole = await send(client, body);
    const chunked = new ExtProcClient({ ...client.options, chunkBytes: 7 });
    const split = await send(chunked, body);
    expect(split.result.type).toBe("continue");
    if (whole.result.type !== "continue" || split.result.type !== "continue") return;
    const ids = (r: typeof whole.result) =>
      (JSON.parse(r.body!.toString()) as { nvext: { token_data: number[] } }).nvext;
    expect(ids(split.result)).toEqual(ids(whole.result));
    await respond(whole.exchange);
    await respond(split.exchange);
    chunked.close();
    await expectFreed(t);
  });

  it("routes a header-only GET /v1/models to a worker without routing headers or a booking", async () => {
    const exchange = client.open();
    const result = await exchange.processRequest({
      headers: [
        [":method", "GET"],
        [":path", "/v1/models"],
        [":authority", "gateway.local"],
        ["x-worker-instance-id", "42"],
      ],
    });
    expect(result.type).toBe("continue");
    if (result.type !== "continue") return;
    expect(WORKERS.map((w) => w.http)).toContain(result.headers.get(DESTINATION_ENDPOINT_KEY));
    expect(result.headers.get("x-worker-instance-id")).toBeUndefined();
    expect(result.headers.get("x-dynamo-routing-mode")).toBeUndefined();
    expect(t.epp.service.status().activeBookings).toBe(0);
    exchange.close();
  });

  it("removes routing headers a client sent (nobody steers routing from outside)", async () => {
    const spoofed: Array<[string, string]> = [
      ["x-worker-instance-id", "1"],
      ["x-dynamo-worker-instance-id", "1"],
      ["x-prefill-instance-id", "2"],
      ["x-dynamo-prefill-instance-id", "2"],
      ["x-dynamo-prefill-dp-rank", "3"],
      ["x-prefiller-host-port", "10.6.6.6:1"],
      ["x-gateway-destination-endpoint", "10.6.6.6:1"],
    ];
    const { exchange, result } = await send(client, chat("spoof"), { headers: spoofed });
    if (result.type !== "continue") throw new Error(result.type);
    expect(WORKERS.map((w) => idOf(w.name).toString())).toContain(result.headers.get("x-worker-instance-id"));
    expect(result.headers.get("x-dynamo-worker-instance-id")).toBe(result.headers.get("x-worker-instance-id"));
    for (const name of ["x-prefill-instance-id", "x-dynamo-prefill-instance-id", "x-dynamo-prefill-dp-rank"])
      expect(result.headers.get(name)).toBeUndefined();
    expect(result.headers.get("x-prefiller-host-port")).toBeUndefined();
    expect(result.headers.getAll(DESTINATION_ENDPOINT_KEY)).toHaveLength(1);
    expect(WORKERS.map((w) => w.http)).toContain(result.headers.get(DESTINATION_ENDPOINT_KEY));
    await respond(exchange);
    await expectFreed(t);
  });
});

describe("protocol configuration", () => {
  let t: TestEpp;
  beforeAll(async () => {
    t = await startEpp({ workers: WORKERS, tls: false });
  });
  afterAll(() => t.close());

  it("accepts Envoy 1.38's full duplex with send_body_without_waiting_for_header_response: false", async () => {
    expect(ENVOY_PROTOCOL_CONFIG.send_body_without_waiting_for_header_response).toBe(false);
    const { exchange, result } = await send(t.client, chat("envoy 1.38"));
    expect(result.type).toBe("continue");
    await respond(exchange);
  });

  it("ends the stream with FAILED_PRECONDITION naming the field for any other body mode", async () => {
    const buffered = new ExtProcClient({
      target: `127.0.0.1:${t.epp.server.port}`,
      protocolConfig: { ...ENVOY_PROTOCOL_CONFIG, request_body_mode: BodySendMode.BUFFERED },
    });
    const exchange = buffered.open();
    const result = await exchange.processRequest({ headers: postHeaders(), body: Buffer.from("{}") });
    expect(result).toMatchObject({ type: "error", grpcCode: 9 });
    expect(result.type === "error" && result.message).toMatch(/request_body_mode/);
    exchange.close();
    buffered.close();
  });
});
