import type { IncomingMessage } from "node:http";

/** A whole body, or the limit it passed (nothing of it is kept). */
export type BodyRead =
  | { readonly ok: true; readonly body: Buffer }
  | {
      readonly ok: false;
      readonly limitBytes: number;
      /** The `content-length` that was over the limit before a byte was read; undefined when counting passed it. */
      readonly declaredBytes: number | undefined;
    };

/**
 * Reads a request's or a response's body, at most `maxBytes` of it. Past the limit (a larger
 * `content-length`, or the bytes counted so far) it keeps nothing and stops reading: a response
 * (client side) is destroyed, which drops its connection; a request's remaining bytes are discarded as
 * they arrive, so the caller can still answer it (with `connection: close`, the connection ends once
 * the answer is written). Memory stays at most `maxBytes` plus one chunk whatever the peer sends.
 * Rejects when the message fails or is cut short.
 */
export function readBody(message: IncomingMessage, maxBytes: number): Promise<BodyRead> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBytes) parts.push(chunk);
      else overflow(undefined);
    };
    const onEnd = () => resolve({ ok: true, body: Buffer.concat(parts, size) });
    const onClose = () => {
      if (!message.complete) reject(new Error("the body was cut short"));
    };
    const overflow = (declaredBytes: number | undefined) => {
      parts.length = 0;
      message.off("data", onData).off("end", onEnd).off("close", onClose).off("error", reject);
      // A failure from here on (the destroy below, a reset while discarding) concerns nobody.
      message.on("error", () => undefined);
      if (message.method) message.resume();
      else message.destroy();
      resolve({ ok: false, limitBytes: maxBytes, declaredBytes });
    };
    const declared = Number(message.headers["content-length"]);
    if (Number.isFinite(declared) && declared > maxBytes) return overflow(declared);
    message.on("data", onData).on("end", onEnd).on("close", onClose).on("error", reject);
  });
}
