import { Agent, createServer, request, type IncomingMessage, type Server } from "node:http";
import { describe, expect, it } from "vitest";
import { closeServer, listen, portOf, send, sendJson, sendText } from "../src/index.js";

function get(port: number, agent: Agent | false = false, path = "/"): Promise<{ res: IncomingMessage; text: string }> {
  return new Promise((resolve, reject) => {
    request({ host: "127.0.0.1", port, agent, path }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (chunk: Buffer) => parts.push(chunk));
      res.on("end", () => resolve({ res, text: Buffer.concat(parts).toString() }));
      res.on("error", reject);
    })
      .on("error", reject)
      .end();
  });
}

describe("listen, portOf, closeServer", () => {
  it("binds a free port, and rejects a port already taken", async () => {
    const server = createServer((_req, res) => sendText(res, 200, "hi"));
    const port = await listen(server, 0, "127.0.0.1");
    expect(port).toBeGreaterThan(0);
    expect(portOf(server)).toBe(port);
    expect((await get(port)).text).toBe("hi");
    const second = createServer();
    await expect(listen(second, port, "127.0.0.1")).rejects.toMatchObject({ code: "EADDRINUSE" });
    await closeServer(server);
  });

  it("closes at once with an idle keep-alive connection open", async () => {
    const server = createServer((_req, res) => sendText(res, 200, "hi"));
    const port = await listen(server, 0, "127.0.0.1");
    const agent = new Agent({ keepAlive: true });
    await get(port, agent);
    const started = performance.now();
    await closeServer(server);
    expect(performance.now() - started).toBeLessThan(1_000);
    agent.destroy();
  });

  it("lets a response in flight finish, or with force cuts it", async () => {
    const slow = (server: Server) =>
      server.on("request", (_req, res) => setTimeout(() => sendText(res, 200, "late"), 200));
    const server = slow(createServer());
    const port = await listen(server, 0, "127.0.0.1");
    const answer = get(port);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await closeServer(server);
    expect((await answer).text).toBe("late");

    const forced = slow(createServer());
    const forcedPort = await listen(forced, 0, "127.0.0.1");
    const cut = get(forcedPort);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await closeServer(forced, { force: true });
    await expect(cut).rejects.toThrow();
  });
});

describe("send, sendJson, sendText", () => {
  it("sets the type and length; bigints go out as strings; a second answer cuts the connection", async () => {
    const server = createServer((req, res) => {
      if (req.url === "/json") return sendJson(res, 201, { id: 18446744073709551615n }, { "x-extra": "1" });
      if (req.url === "/raw") return send(res, 202, '{"pre":"serialized"}', { "content-type": "application/json" });
      if (req.url === "/text") return sendText(res, 404, "não há");
      res.writeHead(200);
      res.write("partial");
      sendJson(res, 500, { error: "late" });
    });
    const port = await listen(server, 0, "127.0.0.1");
    const json = await get(port, false, "/json");
    expect(json.res.statusCode).toBe(201);
    expect(json.res.headers).toMatchObject({
      "content-type": "application/json",
      "content-length": "29",
      "x-extra": "1",
    });
    expect(JSON.parse(json.text)).toEqual({ id: "18446744073709551615" });
    const raw = await get(port, false, "/raw");
    expect(raw.res.statusCode).toBe(202);
    expect(JSON.parse(raw.text)).toEqual({ pre: "serialized" });
    const text = await get(port, false, "/text");
    expect(text.res.statusCode).toBe(404);
    expect(text.res.headers).toMatchObject({ "content-type": "text/plain; charset=utf-8", "content-length": "8" });
    expect(text.text).toBe("não há");
    await expect(get(port, false, "/twice")).rejects.toThrow();
    await closeServer(server, { force: true });
  });
});
