import { describe, expect, it } from "vitest";
import { DEFAULT_SETTINGS, KvRouter, RouterConfigError, resolveSettings, settingsFromEnv } from "../src/index.js";

const fromEnv = (env: Record<string, string>) => resolveSettings(settingsFromEnv(env));
function problemsOf(run: () => unknown): string[] {
  try {
    run();
  } catch (e) {
    if (e instanceof RouterConfigError) return [...e.problems];
    throw e;
  }
  throw new Error("expected a RouterConfigError");
}

describe("router configuration", () => {
  it("uses the documented defaults", () => {
    const st = fromEnv({});
    expect(st).toMatchObject({
      mode: "kv",
      blockSize: 128,
      overlapScoreCredit: 1,
      overlapScoreCreditDecay: 0,
      prefillLoadScale: 1,
      hostCacheHitWeight: 0.75,
      diskCacheHitWeight: 0.25,
      decodeActiveRequestWeight: 0,
      temperature: 0,
      useKvEvents: true,
      ttlSecs: 120,
      trackActiveBlocks: true,
      trackOutputBlocks: false,
      assumeKvReuse: true,
      trackPrefillTokens: true,
      activeRequestExpirySecs: 300,
      replicaSync: false,
      enforceDisagg: false,
      busyThreshold: -1,
      predictedTtlSecs: undefined,
      minInitialWorkers: 0,
    });
    expect(st).toEqual({ ...DEFAULT_SETTINGS });
  });

  it("reads every kind of variable, trimmed, with empty or blank values counting as unset", () => {
    const st = fromEnv({
      DYN_ROUTER_MODE: " Round-Robin ",
      DYN_KV_CACHE_BLOCK_SIZE: "64",
      DYN_ROUTER_TEMPERATURE: "0.5",
      DYN_ROUTER_TRACK_OUTPUT_BLOCKS: "TRUE",
      DYN_BUSY_THRESHOLD: "0.9",
      DYN_ENFORCE_DISAGG: "1",
      DYN_ROUTER_PREDICTED_TTL_SECS: "5",
      DYN_ACTIVE_PREFILL_TOKENS_THRESHOLD_FRAC: "1.5",
      DYN_ROUTER_KV_OVERLAP_SCORE_CREDIT: "",
      DYN_ROUTER_PREFILL_LOAD_SCALE: "   ",
    });
    expect(st).toMatchObject({
      mode: "round-robin",
      blockSize: 64,
      temperature: 0.5,
      trackOutputBlocks: true,
      busyThreshold: 0.9,
      enforceDisagg: true,
      predictedTtlSecs: 5,
      activePrefillTokensThresholdFrac: 1.5,
      overlapScoreCredit: 1,
      prefillLoadScale: 1,
    });
  });

  it("reads the canonical name before its alias", () => {
    expect(fromEnv({ DYN_ROUTER_USE_KV_EVENTS: "true", DYN_USE_KV_EVENTS: "false" }).useKvEvents).toBe(true);
    expect(fromEnv({ DYN_USE_KV_EVENTS: "false" }).useKvEvents).toBe(false);
    expect(fromEnv({ DYN_ROUTER_USE_KV_EVENTS: " ", DYN_USE_KV_EVENTS: "false" }).useKvEvents).toBe(false);
    expect(fromEnv({ DYN_ROUTER_REPLICA_SYNC: "false", DYNAMO_ROUTER_REPLICA_SYNC: "true" }).replicaSync).toBe(false);
    expect(fromEnv({ DYNAMO_ROUTER_REPLICA_SYNC: "true" }).replicaSync).toBe(true);
  });

  it("applies the deprecated overlap weight with the documented precedence", () => {
    const warnings: string[] = [];
    expect(
      resolveSettings({ overlapScoreWeight: 2.5, overlapScoreCredit: 0.5, prefillLoadScale: 3 }, (w) =>
        warnings.push(w),
      ),
    ).toMatchObject({ overlapScoreCredit: 0.5, prefillLoadScale: 2.5 });
    expect(warnings[0]).toMatch(/deprecated/);
    expect(
      fromEnv({
        DYN_ROUTER_KV_OVERLAP_SCORE_WEIGHT: "0",
        DYN_ROUTER_KV_OVERLAP_SCORE_CREDIT: "0.8",
        DYN_ROUTER_PREFILL_LOAD_SCALE: "2",
      }),
    ).toMatchObject({ overlapScoreCredit: 0, prefillLoadScale: 0 });
    expect(fromEnv({ DYN_ROUTER_KV_OVERLAP_SCORE_WEIGHT: "2", DYN_OVERLAP_SCORE_WEIGHT: "7" }).prefillLoadScale).toBe(
      2,
    );
    expect(fromEnv({ DYN_OVERLAP_SCORE_WEIGHT: "7" }).prefillLoadScale).toBe(7);
    expect(fromEnv({ DYN_ROUTER_PREFILL_LOAD_SCALE: "3" }).prefillLoadScale).toBe(3);
  });

  it("fails at construction naming the variable and the accepted range", () => {
    const problems = problemsOf(() =>
      KvRouter.fromEnv({
        DYN_ROUTER_TEMPERATURE: "-1",
        DYN_KV_CACHE_BLOCK_SIZE: "12.5",
        DYN_ROUTER_USE_KV_EVENTS: "maybe",
        DYN_ROUTER_MODE: "fastest",
        DYN_ACTIVE_DECODE_BLOCKS_THRESHOLD: "1.2",
        DYN_BUSY_THRESHOLD: "abc",
      }),
    );
    expect(problems).toEqual([
      'DYN_ROUTER_MODE: expected one of kv, round-robin, random, least-loaded, power-of-two, direct, got "fastest"',
      'DYN_KV_CACHE_BLOCK_SIZE: expected an integer ≥ 1, got "12.5"',
      'DYN_ROUTER_TEMPERATURE: expected a finite number ≥ 0, got "-1"',
      'DYN_ROUTER_USE_KV_EVENTS: expected true or false (also 1/0, yes/no, on/off), got "maybe"',
      'DYN_BUSY_THRESHOLD: expected a number ≤ 1 (negative = off; 0–1 = KV fill fraction), got "abc"',
      'DYN_ACTIVE_DECODE_BLOCKS_THRESHOLD: expected a fraction in [0, 1], got "1.2"',
    ]);
    expect(problemsOf(() => new KvRouter({ overlapScoreCredit: Number.NaN }))[0]).toMatch(
      /^overlapScoreCredit \(DYN_ROUTER_KV_OVERLAP_SCORE_CREDIT\): expected a finite number ≥ 0/,
    );
    expect(problemsOf(() => new KvRouter({ maxApproxEntries: 0 }))[0]).toBe(
      "maxApproxEntries: expected an integer ≥ 1, got 0",
    );
  });

  it("maps the frontend's decode fallback onto DYN_ENFORCE_DISAGG", () => {
    expect(fromEnv({ DYN_DECODE_FALLBACK: "false" }).enforceDisagg).toBe(true);
    expect(fromEnv({ DYN_DECODE_FALLBACK: "true" }).enforceDisagg).toBe(false);
    const warnings: string[] = [];
    expect(
      resolveSettings(settingsFromEnv({ DYN_DECODE_FALLBACK: "true", DYN_ENFORCE_DISAGG: "true" }), (w) =>
        warnings.push(w),
      ).enforceDisagg,
    ).toBe(true);
    expect(
      resolveSettings(settingsFromEnv({ DYN_DECODE_FALLBACK: "false", DYN_ENFORCE_DISAGG: "false" }), (w) =>
        warnings.push(w),
      ).enforceDisagg,
    ).toBe(false);
    expect(warnings).toEqual([
      "DYN_DECODE_FALLBACK=true contradicts DYN_ENFORCE_DISAGG=true; DYN_ENFORCE_DISAGG wins",
      "DYN_DECODE_FALLBACK=false contradicts DYN_ENFORCE_DISAGG=false; DYN_ENFORCE_DISAGG wins",
    ]);
    expect(
      resolveSettings(settingsFromEnv({ DYN_DECODE_FALLBACK: "true", DYN_ENFORCE_DISAGG: "false" }), (w) =>
        warnings.push(w),
      ).enforceDisagg,
    ).toBe(false);
    expect(warnings).toHaveLength(2);
  });

  // Before: the queue depth and deadline and the tracking key variables did not exist (silently
  // ignored). After: every variable of the queue, the lease and the keyed hash fails fast on a bad value,
  // naming the variable, the value and the accepted range.
  it("fails fast on unparseable queue, lease and tracking-key values, naming variable, value and range", () => {
    const problems = problemsOf(() =>
      fromEnv({
        DYN_ROUTER_QUEUE_THRESHOLD: "lots",
        DYN_ROUTER_QUEUE_POLICY: "lifo",
        DYN_ROUTER_QUEUE_MAX_DEPTH: "2.5",
        DYN_ROUTER_QUEUE_TIMEOUT_SECS: "0",
        DYN_ROUTER_ACTIVE_REQUEST_EXPIRY_SECS: "-3",
        DYN_ROUTER_TRACKING_HASH: "sha1",
      }),
    );
    expect(problems).toEqual([
      'DYN_ROUTER_ACTIVE_REQUEST_EXPIRY_SECS: expected a finite number > 0, got "-3"',
      'DYN_ROUTER_TRACKING_HASH: expected public-xxh3-v1 or keyed-xxh3-v1, got "sha1"',
      'DYN_ROUTER_QUEUE_THRESHOLD: expected a finite number > 0, got "lots"',
      'DYN_ROUTER_QUEUE_POLICY: expected fcfs, wspt or lcfs, got "lifo"',
      'DYN_ROUTER_QUEUE_MAX_DEPTH: expected an integer ≥ 1, got "2.5"',
      'DYN_ROUTER_QUEUE_TIMEOUT_SECS: expected a finite number > 0, got "0"',
    ]);
  });

  it("rejects combinations and features this router does not run, and applies the load-aware preset", () => {
    expect(
      problemsOf(() => fromEnv({ DYN_ROUTER_USE_KV_EVENTS: "false", DYN_ROUTER_PREDICTED_TTL_SECS: "5" }))[0],
    ).toMatch(/^DYN_ROUTER_PREDICTED_TTL_SECS: requires KV events/);
    expect(
      problemsOf(() =>
        fromEnv({ DYN_ROUTER_POLICY_CONFIG: "policy.yaml", DYN_ROUTER_APPROXIMATE_CACHE_POLICY: "lru" }),
      ),
    ).toHaveLength(2);
    expect(fromEnv({ DYN_ROUTER_LOAD_AWARE: "true", DYN_ROUTER_KV_OVERLAP_SCORE_CREDIT: "1" })).toMatchObject({
      overlapScoreCredit: 0,
      useKvEvents: false,
      assumeKvReuse: false,
      trackActiveBlocks: true,
    });
  });
});
