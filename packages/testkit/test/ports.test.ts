import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { freePort, freePortRun, portIsFree } from "../src/index.js";

const ephemeralLow = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

describe("free ports", () => {
  const servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
  });

  it("hands out distinct ports below the kernel's ephemeral range, each one bindable", async () => {
    const ports = [];
    for (let i = 0; i < 20; i++) ports.push(await freePort());
    expect(new Set(ports).size).toBe(ports.length);
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(10_000);
      if (ephemeralLow - 10_000 >= 4_096) expect(port).toBeLessThan(ephemeralLow);
      servers.push(await listen(port));
    }
  });

  it("gives a run of consecutive free ports, skipping ports that are taken", async () => {
    const base = await freePortRun(4);
    for (let i = 0; i < 4; i++) expect(await portIsFree(base + i)).toBe(true);
    // Take the 64 ports after the last one handed out: the next runs the walk would offer.
    const probe = await freePortRun(1);
    const taken = new Set<number>();
    for (let port = probe + 1; port <= probe + 64; port++) {
      const server = await listen(port).catch(() => undefined);
      if (server !== undefined) servers.push(server);
      taken.add(port);
    }
    const next = await freePortRun(3);
    for (let i = 0; i < 3; i++) expect(taken.has(next + i)).toBe(false);
    for (let i = 0; i < 3; i++) servers.push(await listen(next + i));
  });

  it("never hands the same port to calls running at the same time", async () => {
    const ports = await Promise.all(Array.from({ length: 12 }, () => freePort()));
    expect(new Set(ports).size).toBe(ports.length);
    for (const port of ports) servers.push(await listen(port));
  });

  it("reports a port in use as taken, and refuses a run of no ports", async () => {
    const port = await freePort();
    servers.push(await listen(port));
    expect(await portIsFree(port)).toBe(false);
    await expect(freePortRun(0)).rejects.toThrow("count ≥ 1");
  });
});
