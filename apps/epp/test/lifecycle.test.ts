import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, credentials } from "@grpc/grpc-js";
import {
  BODY_CHUNK_BYTES,
  DESTINATION_ENDPOINT_KEY,
  ENVOY_PROTOCOL_CONFIG,
  ExtProcClient,
  HeaderList,
  PROCESS_METHOD_PATH,
  decodeProcessingResponse,
  encodeProcessingRequest,
  type ProcessingResponse,
} from "@dynamo/ext-proc";
import { waitFor } from "@dynamo/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  MODEL,
  chat,
  closeSharedTokenizer,
  expectFreed,
  idOf,
  metricValue,
  postHeaders,
  respond,
  send,
  startEpp,
  type TestEpp,
} from "./support.js";

afterAll(closeSharedTokenizer);

const WORKERS = [
  { name: "w1", http: "127.0.0.1:8001" },
  { name: "w2", http: "127.0.0.2:8002" },
];
const COMPLETED_OK =
  'dynamo_epp_lifecycle_callbacks_total{model="Qwen/Qwen3-0.6B",operation="request_complete",result="ok"}';
const COMPLETED_ERROR =
  'dynamo_epp_lifecycle_callbacks_total{model="Qwen/Qwen3-0.6B",operation="request_complete",result="error"}';
const PREFILL_OK =
  'dynamo_epp_lifecycle_callbacks_total{model="Qwen/Qwen3-0.6B",operation="prefill_complete",result="ok"}';

function sse(events: unknown[]): Buffer[] {
  return events.map((e) => Buffer.from(`data: ${typeof e === "string" ? e : JSON.stringify(e)}\n\n`));
}

describe("the response path", () => {
  let t: TestEpp;
  beforeAll(async () => {
    t = await startEpp({ workers: WORKERS, tls: false, env: { DYN_ROUTER_TRACK_OUTPUT_BLOCKS: "true" } });
  });
  afterAll(() => t.close());

  it("SSE: the first chunk marks prefill complete, tokens grow the booking, usage is read, freed once", async () => {
    const metrics = t.epp.metricsPort!;
    const [completedBefore, prefillBefore] = [
      await metricValue(metrics, COMPLETED_OK),
      await metricValue(metrics, PREFILL_OK),
    ];
    const { exchange, result } = await send(t.client, chat("stream me", { stream: true }));
    if (result.type !== "continue") throw new Error(result.type);
    const worker = idOf(result.headers.get(DESTINATION_ENDPOINT_KEY) === "127.0.0.1:8001" ? "w1" : "w2");
    const load = () => t.epp.service.router!.load({ workerId: worker, dpRank: 0 })!;
    const booked = load();
    expect(booked.activePrefillTokens).toBeGreaterThan(0);
    await exchange.processResponseHeaders({ status: 200, headers: [["content-type", "text/event-stream"]] });
    // 40 generated tokens on a 16-token block size: the booking grows by output blocks as they stream.
    const words = sse(Array.from({ length: 40 }, (_, i) => ({ choices: [{ delta: { content: `w${i} ` } }] })));
    const tail = sse([
      { choices: [], usage: { prompt_tokens: 12, completion_tokens: 40, prompt_tokens_details: { cached_tokens: 0 } } },
      "[DONE]",
    ]);
    // The booking as it stands each time the picker hands a chunk back (it has processed that chunk by then).
    const seen: Array<{ prefill: number; blocks: number }> = [];
    async function* source() {
      for (const chunk of [...words, ...tail]) {
        yield chunk;
        await new Promise((r) => setTimeout(r, 1));
      }
    }
    const out: Buffer[] = [];
    for await (const chunk of exchange.processResponseBody(source())) {
      out.push(chunk);
      seen.push({ prefill: load()?.activePrefillTokens ?? -1, blocks: load()?.activeBlocks ?? -1 });
    }
    expect(Buffer.concat(out).toString()).toBe(Buffer.concat([...words, ...tail]).toString());
    exchange.close();
    await expectFreed(t);
    expect(seen[0]!.prefill).toBe(0); // prefill complete at the first chunk
    expect(Math.max(...seen.map((s) => s.blocks))).toBeGreaterThan(booked.activeBlocks); // output blocks booked while streaming
    expect(await metricValue(metrics, PREFILL_OK)).toBe(prefillBefore + 1);
    expect(await metricValue(metrics, COMPLETED_OK)).toBe(completedBefore + 1);
    const line = t.lines.findLast((l) => l["msg"] === "request")!;
    expect(line).toMatchObject({ completionTokens: 40, actualCachedTokens: 0, outcome: "complete", status: 200 });
  });

  it("a buffered response ends the booking with the usage of its body", async () => {
    const { exchange, result } = await send(t.client, chat("buffered"));
    expect(result.type).toBe("continue");
    await respond(exchange, { prompt_tokens: 9, completion_tokens: 2, prompt_tokens_details: { cached_tokens: 0 } });
    await expectFreed(t);
    expect(t.lines.findLast((l) => l["msg"] === "request")).toMatchObject({ completionTokens: 2, outcome: "complete" });
  });

  it("a client that goes away before the pick leaves nothing booked; after the pick, frees once", async () => {
    const metrics = t.epp.metricsPort!;
    const okBefore = await metricValue(metrics, COMPLETED_OK);
    const errorBefore = await metricValue(metrics, COMPLETED_ERROR);
    // Before: a long prompt is still being tokenized when the stream is reset.
    const exchange = t.client.open();
    const pending = exchange.processRequest({
      headers: postHeaders(),
      body: Buffer.from(JSON.stringify(chat("long prompt ".repeat(60_000)))),
    });
    await waitFor(() => t.epp.server.inflightRoutes === 1, "the pick to start");
    exchange.close();
    await pending.catch(() => undefined);
    await waitFor(() => t.epp.server.inflightRoutes === 0 && t.epp.server.activeStreams === 0, "the pick to end");
    await expectFreed(t);
    // After: the request was routed, then the client left before any response.
    const routed = await send(t.client, chat("cancel after pick"));
    expect(routed.result.type).toBe("continue");
    expect(t.epp.service.status().activeBookings).toBe(1);
    routed.exchange.close();
    await expectFreed(t);
    // The pick abandoned mid-tokenization booked nothing (its lifecycle, had the decision won the race
    // against the reset, would have ended "abandoned"); the routed one ends "cancelled". Each frees once.
    const outcomes = t.lines.filter((l) => l["msg"] === "request").map((l) => l["outcome"]);
    const ended = outcomes.at(-2) === "abandoned" ? 2 : 1;
    expect(outcomes.at(-1)).toBe("cancelled");
    await waitFor(async () => (await metricValue(metrics, COMPLETED_OK)) === okBefore + ended, "lifecycles to end");
    expect(await metricValue(metrics, COMPLETED_ERROR)).toBe(errorBefore);
  });

  it("streams a large rewritten body back in chunks of at most 62,000 bytes (raw gRPC)", async () => {
    const raw = new Client(`127.0.0.1:${t.epp.server.port}`, credentials.createInsecure());
    const body = Buffer.from(JSON.stringify(chat("large ".repeat(40_000))));
    const responses = await new Promise<ProcessingResponse[]>((resolve, reject) => {
      const got: ProcessingResponse[] = [];
      const call = raw.makeBidiStreamRequest(
        PROCESS_METHOD_PATH,
        (m: Buffer) => m,
        (b: Buffer) => b,
      );
      call.on("data", (b: Buffer) => {
        const message = decodeProcessingResponse(b);
        got.push(message);
        if (message.request_body?.response?.body_mutation?.streamed_response?.end_of_stream) {
          call.end();
          resolve(got);
        }
      });
      call.on("error", reject);
      call.write(
        encodeProcessingRequest({
          request_headers: { headers: new HeaderList(postHeaders()).toWire() },
          protocol_config: ENVOY_PROTOCOL_CONFIG,
        }),
      );
      for (let i = 0; i < body.length; i += 16_384)
        call.write(
          encodeProcessingRequest({
            request_body: { body: body.subarray(i, i + 16_384), end_of_stream: i + 16_384 >= body.length },
          }),
        );
    });
    raw.close();
    const chunks = responses.flatMap((r) => {
      const streamed = r.request_body?.response?.body_mutation?.streamed_response;
      return streamed === undefined ? [] : [streamed];
    });
    expect(responses[0]!.request_headers).toBeDefined();
    expect(chunks.length).toBeGreaterThan(5);
    for (const chunk of chunks) expect(chunk.body!.length).toBeLessThanOrEqual(BODY_CHUNK_BYTES);
    expect(chunks.filter((c) => c.end_of_stream === true)).toHaveLength(1);
    const forwarded = JSON.parse(Buffer.concat(chunks.map((c) => c.body!)).toString()) as {
      model: string;
      nvext: { token_data: number[] };
    };
    expect(forwarded.model).toBe(MODEL);
    expect(forwarded.nvext.token_data.length).toBeGreaterThan(40_000);
    await expectFreed(t);
  });

  it("1,000 concurrent streams are all answered and all freed", async () => {
    const graceful = new ExtProcClient({ ...t.client.options, closeMode: "graceful" });
    const results = await Promise.all(
      Array.from({ length: 1000 }, async (_, i) => {
        const { exchange, result } = await send(graceful, chat(`concurrent request ${i % 50}`));
        if (result.type === "continue") await respond(exchange);
        else exchange.close();
        return result.type === "continue" ? result.headers.get(DESTINATION_ENDPOINT_KEY) : result.type;
      }),
    );
    graceful.close();
    expect(results.filter((r) => r === "127.0.0.1:8001" || r === "127.0.0.2:8002")).toHaveLength(1000);
    await expectFreed(t);
  });
});

describe("a worker removed mid-request", () => {
  let t: TestEpp;
  let dir: string;
  const file = () => join(dir, "workers.json");
  const write = (workers: typeof WORKERS) =>
    writeFileSync(file(), JSON.stringify({ defaults: { model: MODEL }, workers }));
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "epp-workers-"));
    write(WORKERS);
    t = await startEpp({ tls: false, env: { DYN_DISCOVERY_FILE: file() } });
  });
  afterAll(async () => {
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("drops its booking, ends the request without harm, and routes the next request elsewhere", async () => {
    const { exchange, result } = await send(t.client, chat("to w1"), { subset: ["127.0.0.1:8001"] });
    expect(result.type === "continue" && result.headers.get(DESTINATION_ENDPOINT_KEY)).toBe("127.0.0.1:8001");
    expect(t.epp.service.status().activeBookings).toBe(1);
    write([WORKERS[1]!]);
    await waitFor(() => t.epp.service.status().workers === 1, "discovery to drop w1");
    expect(t.epp.service.status().activeBookings).toBe(0);
    await respond(exchange);
    await waitFor(() => t.lines.some((l) => l["msg"] === "request" && l["bookingAlreadyFreed"] === true), "the log");
    const next = await send(t.client, chat("after removal"));
    expect(next.result.type === "continue" && next.result.headers.get(DESTINATION_ENDPOINT_KEY)).toBe("127.0.0.2:8002");
    await respond(next.exchange);
    const gone = await send(t.client, chat("only w1"), { subset: ["127.0.0.1:8001"] });
    expect(gone.result).toMatchObject({ type: "immediate", status: 503 });
    gone.exchange.close();
    await expectFreed(t);
  });
});
