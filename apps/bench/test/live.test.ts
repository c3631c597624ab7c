import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { SIMULATOR_TOLERANCE, runLive } from "../src/live/compare.js";
import { runReplicas } from "../src/live/replicas.js";
import { simulateSlice } from "../src/live/simulated.js";
import { conversationSlice, idealReuse } from "../src/live/replay.js";
import { LIVE_DEFAULTS, liveOptions } from "../src/live/options.js";
import { Progress } from "../src/framework.js";
import { loadTrace, type TraceRequest } from "../src/mooncake.js";

const ROOT = fileURLToPath(new URL("../../..", import.meta.url));

const request = (hashIds: number[]): TraceRequest => ({
  timestamp: 0,
  inputLength: hashIds.length * 512,
  outputLength: 8,
  hashIds,
});

/** True while a process with this id exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

describe("live comparison", () => {
  it("kills one of several replicas half-way by default, never the only one", () => {
    const parse = (args: string[]) => liveOptions(args, ROOT, new Progress("test"));
    expect(parse([])).toMatchObject({ eppReplicas: 1, killReplicaAt: undefined });
    expect(parse(["--epp-replicas", "3"])).toMatchObject({ eppReplicas: 3, killReplicaAt: 0.5 });
    expect(parse(["--epp-replicas", "3", "--kill-replica-at", "0.25"])).toMatchObject({ killReplicaAt: 0.25 });
    expect(parse(["--epp-replicas", "3", "--kill-replica-at", "off"])).toMatchObject({ killReplicaAt: undefined });
    expect(() => parse(["--epp-replicas", "3", "--kill-replica-at", "1.5"])).toThrow(/--kill-replica-at/);
    expect(() => parse(["--kill-replica-at", "0.5"])).toThrow(/--epp-replicas 2 or more/);
    expect(() => parse(["--epp-replicas", "2.5"])).toThrow(/whole number/);
    expect(parse([]).eppCpuProfileDir).toBeUndefined();
    expect(parse(["--epp-cpu-prof", "profiles"])).toMatchObject({ eppCpuProfileDir: "profiles" });
  });

  it("slices whole conversations in trace order and knows the best reuse they allow", () => {
    const trace = [
      request([0, 1]),
      request([0, 2]),
      request([0, 1, 3]),
      request([0, 5]),
      request([0, 1, 3, 4]),
      request([0, 2, 6]),
      request([0, 2, 6, 7]),
    ];
    // Conversations [0, 1…] and [0, 2…] have three turns each; [0, 5] one.
    expect(conversationSlice(trace, 2, 3)).toEqual([trace[0], trace[1], trace[2], trace[4], trace[5], trace[6]]);
    expect(conversationSlice(trace, 1, 3)).toEqual([trace[0], trace[2], trace[4]]);
    // Blocks found: none, 0, 0 1, 0 1 3 → 6 of 2 + 2 + 3 + 4 = 11.
    expect(idealReuse([trace[0]!, request([0, 2]), trace[2]!, trace[4]!])).toBeCloseTo(6 / 11);
    const shipped = conversationSlice(loadTrace(ROOT), 4);
    expect(shipped.length).toBeGreaterThanOrEqual(12);
    expect(idealReuse(shipped)).toBeGreaterThan(0.2);
  });

  it("replays a dozen requests over 2 workers through the real processes: every request succeeds, KV-aware reuse ≥ round-robin's, no process left", async () => {
    const notes: string[] = [];
    const profiles = mkdtempSync(join(tmpdir(), "live-profiles-"));
    const comparison = await runLive(
      {
        ...LIVE_DEFAULTS,
        root: ROOT,
        workers: 2,
        conversations: 4,
        // A request takes ~0.1 s here on a quiet machine: 2 s apart, requests do not overlap even when a busy
        // machine slows them tenfold, so KV-aware decisions do not hang on the machine's load, and the simulator,
        // which knows nothing of that load, must make the same ones.
        rate: 0.5,
        maxOutputTokens: 16,
        eppCpuProfileDir: profiles,
        note: (message) => notes.push(message),
        progress: () => undefined,
      },
      simulateSlice,
    );
    for (const run of [comparison.kv, comparison.roundRobin]) {
      expect(run.errors).toEqual({});
      expect(run.succeeded).toBe(run.requests);
      expect(run.requests).toBeGreaterThanOrEqual(12);
      expect(run.perWorker.reduce((a, b) => a + b, 0)).toBe(run.requests);
      expect(run.ttftP50Ms).toBeGreaterThan(0);
    }
    expect(comparison.kv.reuseRatio).toBeGreaterThan(0);
    expect(comparison.kv.reuseRatio).toBeGreaterThanOrEqual(comparison.roundRobin.reuseRatio);
    // The responses' cached tokens and the workers' own counters tell the same story.
    expect(Math.abs(comparison.kv.reuseRatio - comparison.kv.workerReuseRatio)).toBeLessThan(0.05);
    // The offline simulator on the same slice caches what the live engines cached (latencies differ: the live
    // path adds HTTP, tokenization and a loaded machine, which the simulator leaves out).
    for (const mode of ["kv", "roundRobin"] as const)
      expect(Math.abs(comparison.simulated![mode].reuseRatio - comparison[mode].reuseRatio)).toBeLessThanOrEqual(
        SIMULATOR_TOLERANCE.reuseAbsolute,
      );
    // Each run's picker wrote its V8 CPU profiles (its main thread's at least) when it stopped.
    for (const run of ["kv", "round-robin"])
      expect(readdirSync(join(profiles, run, "epp-0")).some((f) => f.endsWith(".cpuprofile"))).toBe(true);
    // mocker, 2 frontends, picker, gateway per run
    expect(comparison.pids.length).toBe(10);
    expect(comparison.pids.filter(alive)).toEqual([]);
  }, 900_000);

  it("compares one picker with two replicas, then kills one mid-run: no failure beyond its open streams, its bookings dropped after the lease, no process left", async () => {
    const comparison = await runReplicas({
      ...LIVE_DEFAULTS,
      root: ROOT,
      workers: 2,
      conversations: 4,
      rate: 2,
      maxOutputTokens: 16,
      eppReplicas: 2,
      killReplicaAt: 0.5,
      note: () => undefined,
      progress: () => undefined,
    });
    for (const run of [comparison.one, comparison.many, comparison.oneAgain]) {
      expect(run.errors).toEqual({});
      expect(run.succeeded).toBe(run.requests);
      expect(run.perWorker.reduce((a, b) => a + b, 0)).toBe(run.requests);
    }
    expect(comparison.many.reuseRatio).toBeGreaterThan(0);
    // Every replica decision is audited once its peer has seen it.
    expect(comparison.conflicts.rechecked).toBeGreaterThanOrEqual(comparison.many.requests);
    expect(comparison.conflicts.conflicts).toBeLessThanOrEqual(comparison.conflicts.rechecked!);
    const kill = comparison.kill!;
    expect(kill.requests).toBe(comparison.many.requests);
    expect(kill.failed).toBeLessThanOrEqual(kill.inflightOnKilled);
    // Gone once the 10 s lease ran out after the last heartbeat (at most 1 s before the kill), not before.
    expect(kill.bookingsGoneMs).not.toBeNull();
    expect(kill.bookingsGoneMs!).toBeGreaterThan(8_000);
    // One picker (twice): mocker, 2 frontends, picker, gateway; the replica runs: mocker, 2 frontends, 2 pickers,
    // gateway, nats-server.
    expect(comparison.pids.length).toBe(5 + 7 + 5 + 7);
    expect(comparison.pids.filter(alive)).toEqual([]);
  }, 900_000);
});
