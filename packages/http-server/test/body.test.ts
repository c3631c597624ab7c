import { createServer, request, type IncomingMessage, type Server } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { closeServer, listen, readBody, sendJson, type BodyRead } from "../src/index.js";

const servers: Server[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => closeServer(server, { force: true })));
});

/** A server that reads each request body with `limit` and answers what it read; reports each read. */
async function bodyServer(limit: number, reads: BodyRead[]): Promise<number> {
  const server = createServer((req, res) => {
    void readBody(req, limit).then((read) => {
      reads.push(read);
      if (read.ok) sendJson(res, 200, { bytes: read.body.length, text: read.body.toString("utf8") });
      else sendJson(res, 413, { limit: read.limitBytes }, { connection: "close" });
    });
  });
  servers.push(server);
  return listen(server, 0, "127.0.0.1");
}

interface Reply {
  status: number;
  json: unknown;
}

/**
 * POSTs `body`, or with `endless` one 16 KiB chunk after another (chunked, no length) until the
 * connection ends; resolves with the answer once the connection is gone.
 */
function post(port: number, body: string | { endless: true }, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    let answer: { status: number; json: unknown } | undefined;
    const req = request({ host: "127.0.0.1", port, method: "POST", path: "/", headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (chunk: Buffer) => parts.push(chunk));
      res.on("end", () => {
        answer = { status: res.statusCode!, json: JSON.parse(Buffer.concat(parts).toString()) };
      });
    });
    req.on("error", () => undefined);
    req.on("close", () => (answer === undefined ? reject(new Error("no answer")) : resolve(answer)));
    if (typeof body === "string") {
      req.end(body);
      return;
    }
    const chunk = Buffer.alloc(16 * 1024, 120);
    const pump = () => {
      let room = true;
      while (room && !req.destroyed) room = req.write(chunk);
      if (!req.destroyed) req.once("drain", pump);
    };
    pump();
  });
}

describe("readBody on a request", () => {
  it("reads a body up to and at the limit, and an empty one", async () => {
    const reads: BodyRead[] = [];
    const port = await bodyServer(10, reads);
    expect(await post(port, "héllo")).toMatchObject({ status: 200, json: { bytes: 6, text: "héllo" } });
    expect(await post(port, "0123456789")).toMatchObject({ status: 200, json: { bytes: 10 } });
    expect(await post(port, "")).toMatchObject({ status: 200, json: { bytes: 0, text: "" } });
  });

  it("refuses a declared length over the limit before reading a byte", async () => {
    const reads: BodyRead[] = [];
    const port = await bodyServer(1000, reads);
    const reply = await post(port, "x".repeat(5000));
    expect(reply).toMatchObject({ status: 413, json: { limit: 1000 } });
    expect(reads).toEqual([{ ok: false, limitBytes: 1000, declaredBytes: 5000 }]);
  });

  it("stops an endless chunked body at the limit: the answer reaches the client and the connection ends", async () => {
    const reads: BodyRead[] = [];
    const port = await bodyServer(64 * 1024, reads);
    const reply = await post(port, { endless: true }, { "transfer-encoding": "chunked" });
    expect(reply).toMatchObject({ status: 413, json: { limit: 64 * 1024 } });
    expect(reads).toEqual([{ ok: false, limitBytes: 64 * 1024, declaredBytes: undefined }]);
  });
});

describe("readBody on a response", () => {
  /** A server answering 200 with `chunks` 16 KiB chunks (endless when undefined), then resetting when `cut`. */
  async function responder(
    chunks: number | undefined,
    cut = false,
  ): Promise<{ port: number; closed: Promise<boolean> }> {
    let finished!: (complete: boolean) => void;
    const closed = new Promise<boolean>((resolve) => (finished = resolve));
    const server = createServer((req, res) => {
      req.resume();
      res.on("close", () => finished(res.writableFinished));
      res.writeHead(200, chunks === undefined || cut ? {} : { "content-length": chunks * 16 * 1024 });
      const chunk = Buffer.alloc(16 * 1024, 121);
      let sent = 0;
      const pump = () => {
        while (!res.destroyed && (chunks === undefined || sent < chunks)) {
          sent++;
          if (!res.write(chunk)) return void res.once("drain", pump);
        }
        if (cut) res.socket?.destroy();
        else if (!res.destroyed) res.end();
      };
      pump();
    });
    servers.push(server);
    return { port: await listen(server, 0, "127.0.0.1"), closed };
  }

  function get(port: number): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      request({ host: "127.0.0.1", port, agent: false }, resolve).on("error", reject).end();
    });
  }

  it("reads a whole response", async () => {
    const { port } = await responder(4);
    const read = await readBody(await get(port), 64 * 1024);
    expect(read.ok && read.body.length).toBe(64 * 1024);
  });

  it("drops the connection of an endless response once it passes the limit", async () => {
    const { port, closed } = await responder(undefined);
    const response = await get(port);
    expect(await readBody(response, 100 * 1024)).toEqual({
      ok: false,
      limitBytes: 100 * 1024,
      declaredBytes: undefined,
    });
    expect(response.destroyed).toBe(true);
    expect(await closed).toBe(false);
  });

  it("refuses a declared length over the limit without reading it", async () => {
    const { port } = await responder(8);
    const response = await get(port);
    expect(await readBody(response, 1024)).toEqual({ ok: false, limitBytes: 1024, declaredBytes: 8 * 16 * 1024 });
    expect(response.destroyed).toBe(true);
  });

  it("rejects a response cut short", async () => {
    const { port } = await responder(2, true);
    await expect(readBody(await get(port), 1024 * 1024)).rejects.toThrow();
  });
});
