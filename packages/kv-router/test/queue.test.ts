import { seededRng } from "@dynamo/primitives";
import { describe, expect, it } from "vitest";
import { KvRouter, type KvRouterOptions, type RouteResult } from "../src/index.js";
import { BS, prompt } from "./helpers.js";

function routed(r: RouteResult) {
  if (r.kind !== "routed") throw new Error(`rejected: ${r.reason}: ${r.message}`);
  return r;
}

/** Two workers of 64 batched tokens each; the queue holds requests while both have > 32 prompt tokens in prefill. */
function queued(options: KvRouterOptions = {}) {
  const kv = new KvRouter({ blockSize: BS, rng: seededRng(3), queueThreshold: 0.5, ...options });
  kv.addWorker({ workerId: 1n, maxNumBatchedTokens: 64 });
  kv.addWorker({ workerId: 2n, maxNumBatchedTokens: 64 });
  const fill = [routed(kv.route({ tokens: prompt(3, 1, 1) })), routed(kv.route({ tokens: prompt(3, 2, 2) }))];
  return { kv, fill };
}

const settled = async <T>(p: Promise<T>) => {
  let done = false;
  void p.then(() => (done = true));
  await new Promise((resolve) => setImmediate(resolve));
  return done;
};

describe("the router queue", () => {
  // Before: DYN_ROUTER_QUEUE_THRESHOLD stopped the program (a configuration error). After: requests
  // wait while every worker is over the threshold and are routed as load frees.
  it("holds requests while every worker is over the threshold and routes them as load frees", async () => {
    const { kv, fill } = queued();
    expect(fill.map((d) => d.worker.workerId).sort()).toEqual([1n, 2n]);
    const waiting = kv.routeQueued({ tokens: prompt(2, 3, 3), requestId: "q" });
    expect(await settled(waiting)).toBe(false);
    expect(kv.queueDepth).toBe(1);
    kv.markPrefillComplete(fill[1]!.bookingId);
    const d = routed(await waiting);
    expect(d.worker).toEqual(fill[1]!.worker);
    expect(kv.queueDepth).toBe(0);
    expect(kv.counters.queued).toBe(1);
    // Not saturated: routed at once.
    const quick = queued({ queueThreshold: 1 });
    expect(routed(await quick.kv.routeQueued({ tokens: prompt(2, 3, 3) })).booked).toBe(true);
  });

  it("releases by policy: fcfs in arrival order (priority jumps), wspt shortest prompt first", async () => {
    for (const [policy, expected] of [
      ["fcfs", ["high", "long", "short"]],
      ["wspt", ["short", "high", "long"]],
    ] as const) {
      const { kv, fill } = queued({ queuePolicy: policy });
      const order: string[] = [];
      const requests = [
        { requestId: "long", tokens: prompt(8, 4, 4) },
        { requestId: "short", tokens: prompt(1, 5, 5) },
        { requestId: "high", tokens: prompt(6, 6, 6), priority: 2 },
      ];
      const all = requests.map((r) => kv.routeQueued(r).then((d) => order.push(routed(d).bookingId)));
      await new Promise((resolve) => setImmediate(resolve));
      expect(kv.queueDepth).toBe(3);
      // Each free lets one through: the released request's own prompt saturates the worker again.
      kv.free(fill[0]!.bookingId);
      kv.free(fill[1]!.bookingId);
      for (const id of ["long", "short", "high"]) kv.free(id);
      await Promise.all(all);
      expect(order).toEqual(expected);
    }
  });

  it("refuses when the queue is full and fails a request at its deadline (queue_overloaded)", async () => {
    const { kv } = queued({ queueMaxDepth: 1, queueTimeoutSecs: 0.05 });
    const first = kv.routeQueued({ tokens: prompt(2, 3, 3) });
    const full = await kv.routeQueued({ tokens: prompt(2, 4, 4) });
    expect(full).toMatchObject({ kind: "rejected", reason: "queue_overloaded" });
    expect(full.kind === "rejected" && full.message).toMatch(/DYN_ROUTER_QUEUE_MAX_DEPTH=1/);
    const late = await first;
    expect(late).toMatchObject({ kind: "rejected", reason: "queue_overloaded" });
    expect(late.kind === "rejected" && late.message).toMatch(/DYN_ROUTER_QUEUE_TIMEOUT_SECS=0.05/);
    expect(kv.counters).toMatchObject({ queued: 1, queueFull: 1, queueTimeouts: 1 });
    const controller = new AbortController();
    const cancelled = kv.routeQueued({ tokens: prompt(2, 3, 3) }, controller.signal);
    controller.abort();
    expect(await cancelled).toMatchObject({ kind: "rejected", reason: "queue_overloaded" });
    expect(kv.queueDepth).toBe(0);
  });

  it("reads DYN_ROUTER_QUEUE_* from the environment", () => {
    const kv = KvRouter.fromEnv({
      DYN_ROUTER_QUEUE_THRESHOLD: "0.8",
      DYN_ROUTER_QUEUE_POLICY: "wspt",
      DYN_ROUTER_QUEUE_MAX_DEPTH: "16",
      DYN_ROUTER_QUEUE_TIMEOUT_SECS: "5",
    });
    expect(kv.settings).toMatchObject({
      queueThreshold: 0.8,
      queuePolicy: "wspt",
      queueMaxDepth: 16,
      queueTimeoutSecs: 5,
    });
    expect(() => KvRouter.fromEnv({ DYN_ROUTER_QUEUE_MAX_DEPTH: "0" })).toThrow(/DYN_ROUTER_QUEUE_MAX_DEPTH/);
  });
});
