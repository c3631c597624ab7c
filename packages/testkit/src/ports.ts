import { readFileSync } from "node:fs";
import { createServer } from "node:net";

/**
 * Ports are handed out below the kernel's ephemeral range, so an outgoing connection (which takes its local port
 * from that range) can never occupy a port between the moment it was found free and the moment a child process
 * binds it. Each process walks the range from a random start, so concurrent test processes rarely meet, and a
 * port is only handed out after a bind on it succeeded.
 */
const LOWEST = 10_000;
const MIN_SPAN = 4_096;
/** Ports left unused after each run handed out, so `port + rank` of one caller is not the next caller's port. */
const GAP = 16;

function ephemeralStart(): number {
  try {
    const [low] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/);
    const value = Number(low);
    return Number.isInteger(value) && value > 0 ? value : 32_768;
  } catch {
    return 32_768;
  }
}

const highest = ephemeralStart() - 1;
const span = highest - LOWEST + 1;
let cursor = span >= MIN_SPAN ? Math.floor(Math.random() * span) : -1;

/** Whether a TCP server can listen on `port` of 127.0.0.1 right now. */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** Asks the kernel for a port of its ephemeral range that is free right now (where no range below it exists). */
function kernelPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      if (address === null || typeof address === "string") {
        server.close();
        reject(new Error("could not read the bound port"));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

/**
 * A run of `count` consecutive TCP ports free on 127.0.0.1 right now, for servers that listen on `base + i`
 * (data-parallel ranks, a mocker's workers); returns the first.
 */
export async function freePortRun(count = 1): Promise<number> {
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`a run of ports needs a count ≥ 1, got ${count}`);
  if (cursor < 0) {
    for (let attempt = 0; attempt < 200; attempt++) {
      const base = await kernelPort();
      let free = base + count - 1 <= 65_535;
      for (let i = 1; i < count && free; i++) free = await portIsFree(base + i);
      if (free) return base;
    }
    throw new Error(`no ${count} consecutive free ports on 127.0.0.1`);
  }
  for (let tried = 0; tried < span;) {
    if (cursor + count > span) cursor = 0;
    // Claimed before the first await, so calls running at the same time never check the same ports; the gap
    // after each run keeps `port + rank` of a caller that asked for one port off the next caller's ports.
    const base = LOWEST + cursor;
    cursor += count + GAP;
    tried += count + GAP;
    let free = true;
    for (let i = 0; i < count && free; i++) free = await portIsFree(base + i);
    if (free) return base;
  }
  throw new Error(`no ${count} consecutive free ports on 127.0.0.1 between ${LOWEST} and ${highest}`);
}

/** A TCP port free on 127.0.0.1 right now, below the kernel's ephemeral range where there is room. */
export function freePort(): Promise<number> {
  return freePortRun(1);
}
