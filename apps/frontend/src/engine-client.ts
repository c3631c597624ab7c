import { Agent, request, type IncomingMessage, type OutgoingHttpHeaders } from "node:http";
import { readBody } from "@dynamo/http-server";

/**
 * HTTP/1.1 to engines (the local one and prefill workers) over kept-alive connections. Node's own
 * `http.request` with a keep-alive agent: measured against `fetch` (`npm run bench -- frontend`
 * compares both), it adds less per request and per streamed chunk (no web-stream layer).
 */
export class EngineClient {
  private readonly agent = new Agent({
    keepAlive: true,
    keepAliveMsecs: 1_000,
    maxFreeSockets: 256,
    scheduling: "lifo",
  });

  /**
   * POSTs (or GETs, without a body) and resolves with the response once its head arrives; the body is
   * the caller's to read. `signal` aborting destroys the connection, which is how an engine learns that
   * the client went away.
   */
  send(
    url: URL,
    method: "GET" | "POST",
    headers: OutgoingHttpHeaders,
    body: string | undefined,
    signal: AbortSignal,
  ): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const outgoing = request(url, { method, headers, agent: this.agent, signal }, resolve);
      outgoing.setNoDelay(true);
      outgoing.on("error", reject);
      if (body === undefined) outgoing.end();
      else {
        outgoing.setHeader("content-length", Buffer.byteLength(body));
        outgoing.end(body);
      }
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/**
 * The whole body of a response as text, at most `limit` bytes: past it the connection is dropped and
 * this rejects, as it does when the response fails.
 */
export async function readText(message: IncomingMessage, limit: number): Promise<string> {
  const read = await readBody(message, limit);
  if (!read.ok) throw new Error(`response body exceeds ${limit} bytes`);
  return read.body.toString("utf8");
}
