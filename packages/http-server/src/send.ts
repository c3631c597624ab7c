import type { OutgoingHttpHeaders, ServerResponse } from "node:http";

/**
 * Answers with `status` and `body` (its `content-length` set). When the head has already gone out (a
 * failure in the middle of a response) no second answer is possible: the connection is cut instead.
 */
export function send(
  res: ServerResponse,
  status: number,
  body: string | Buffer,
  headers: OutgoingHttpHeaders = {},
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { ...headers, "content-length": Buffer.byteLength(body) }).end(body);
}

/** `value` as JSON (bigints as decimal strings), `application/json` unless `headers` say otherwise. */
export function sendJson(res: ServerResponse, status: number, value: unknown, headers: OutgoingHttpHeaders = {}): void {
  const text = JSON.stringify(value, (_key, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
  send(res, status, text, { "content-type": "application/json", ...headers });
}

/** Plain UTF-8 text, `text/plain` unless `headers` say otherwise. */
export function sendText(res: ServerResponse, status: number, text: string, headers: OutgoingHttpHeaders = {}): void {
  send(res, status, text, { "content-type": "text/plain; charset=utf-8", ...headers });
}
