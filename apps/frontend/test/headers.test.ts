import { describe, expect, it } from "vitest";
import { engineHeaders, parseU64, rawIntegerMember, routingFields } from "../src/headers.js";

describe("header → nvext mapping", () => {
  it("maps every canonical header to its fields", () => {
    const fields = routingFields({
      "x-dynamo-worker-instance-id": "18446744073709551615",
      "x-dynamo-prefill-instance-id": "42",
      "x-dynamo-dp-rank": "3",
      "x-dynamo-prefill-dp-rank": "1",
      "x-dynamo-request-priority": "-5",
      "x-dynamo-request-strict-priority": "7",
      "x-tenant-id": "acme",
    });
    expect(fields).toEqual({
      backendInstanceId: 18446744073709551615n,
      decodeWorkerId: 18446744073709551615n,
      prefillWorkerId: 42n,
      dpRank: 3,
      prefillDpRank: 1,
      priority: -5,
      strictPriority: 7,
      cacheSalt: "acme",
      trustedTenantId: "acme",
    });
  });

  it("reads the aliases only when the canonical header is absent", () => {
    expect(
      routingFields({
        "x-worker-instance-id": "5",
        "x-prefill-instance-id": "6",
        "x-dp-rank": "1",
        "x-prefill-dp-rank": "2",
      }),
    ).toEqual({ backendInstanceId: 5n, decodeWorkerId: 5n, prefillWorkerId: 6n, dpRank: 1, prefillDpRank: 2 });
    expect(routingFields({ "x-data-parallel-rank": "4" })).toEqual({ dpRank: 4 });
    expect(routingFields({ "x-dynamo-worker-instance-id": "1", "x-worker-instance-id": "2" }).decodeWorkerId).toBe(1n);
    expect(routingFields({ "x-dynamo-dp-rank": "1", "x-dp-rank": "2", "x-data-parallel-rank": "3" }).dpRank).toBe(1);
  });

  it("ignores unparsable values, keeping the body's field", () => {
    const fields = routingFields(
      {
        "x-dynamo-worker-instance-id": "abc",
        "x-dynamo-dp-rank": "-1",
        "x-dynamo-prefill-instance-id": "18446744073709551616",
        "x-dynamo-request-priority": "2147483648",
        "x-tenant-id": "  ",
      },
      { backend_instance_id: 9, dp_rank: 2 },
    );
    expect(fields).toEqual({ backendInstanceId: 9n, dpRank: 2 });
  });

  it("a canonical header that does not parse does not fall through to its alias", () => {
    expect(routingFields({ "x-dynamo-worker-instance-id": "x", "x-worker-instance-id": "2" })).toEqual({});
  });

  it("headers override the body's nvext; the body alone is honoured (legacy body fields)", () => {
    const body = { prefill_worker_id: 1, decode_worker_id: 2, dp_rank: 0 };
    expect(routingFields({}, body)).toEqual({ prefillWorkerId: 1n, decodeWorkerId: 2n, dpRank: 0 });
    expect(routingFields({ "x-dynamo-worker-instance-id": "3" }, body)).toMatchObject({
      decodeWorkerId: 3n,
      backendInstanceId: 3n,
      prefillWorkerId: 1n,
    });
  });

  it("reads body worker ids past 2^53 from the raw text exactly", () => {
    const raw = '{"model":"m","nvext":{"backend_instance_id":12345678901234567890}}';
    const parsed = JSON.parse(raw) as { nvext: Record<string, unknown> };
    expect(routingFields({}, parsed.nvext, raw).backendInstanceId).toBe(12345678901234567890n);
    expect(rawIntegerMember(raw, "backend_instance_id")).toBe("12345678901234567890");
  });

  it("u32::MAX as the prefill DP rank means unset", () => {
    expect(routingFields({ "x-dynamo-prefill-dp-rank": "4294967295" }, { prefill_dp_rank: 2 })).toEqual({});
  });

  it("parses u64 strictly", () => {
    expect(parseU64(" 17 ")).toBe(17n);
    expect(parseU64("1e3")).toBeUndefined();
    expect(parseU64("")).toBeUndefined();
  });

  it("never forwards routing or hop-by-hop headers to the engine", () => {
    const out = engineHeaders({
      "content-type": "application/json",
      authorization: "Bearer k",
      "x-request-id": "r1",
      "x-dynamo-worker-instance-id": "1",
      "x-worker-instance-id": "1",
      "x-dynamo-routing-mode": "aggregated",
      "x-prefiller-host-port": "10.0.0.1:8000",
      "x-data-parallel-rank": "0",
      "x-tenant-id": "t",
      host: "pod:8000",
      "content-length": "10",
      connection: "keep-alive",
    });
    expect(out).toEqual({ "content-type": "application/json", authorization: "Bearer k", "x-request-id": "r1" });
  });
});
