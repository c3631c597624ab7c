import { connect as netConnect } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { NatsServer, freePort, waitFor } from "../src/index.js";

function reachable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect(port, "127.0.0.1");
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
}

describe("NatsServer", () => {
  let server: NatsServer | undefined;
  afterAll(async () => server?.dispose());

  it("starts on a free port, stops, and restarts on the same port", async () => {
    server = await NatsServer.start();
    expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);
    expect(await reachable(server.port)).toBe(true);
    await server.stop();
    expect(await reachable(server.port)).toBe(false);
    await server.restart();
    expect(await reachable(server.port)).toBe(true);
  });

  it("freePort returns distinct usable ports", async () => {
    const a = await freePort();
    expect(a).toBeGreaterThan(0);
    expect(a).toBeLessThan(65536);
  });

  it("waitFor rejects with the description after the timeout", async () => {
    await expect(waitFor(() => false, "never", 50)).rejects.toThrow("waiting for never");
  });
});
