import { describe, expect, it } from "vitest";
import { isHostPort, isRequestError, resolveRoute } from "../src/route.js";
import type { RequestError, Route } from "../src/types.js";

const fronted = { workerId: 100n, dataParallelSize: 2 };
const none = { routingMode: undefined, prefillerHostPort: undefined };

function error(value: Route | RequestError): RequestError {
  if (!isRequestError(value))
    throw new Error(
      `expected an error, got ${JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v))}`,
    );
  return value;
}

describe("resolveRoute", () => {
  it("serves its own worker and its DP ranks, aggregated", () => {
    expect(resolveRoute({ decodeWorkerId: 100n, dpRank: 1 }, none, fronted)).toEqual({
      decode: { workerId: 100n, dpRank: 1 },
    });
    expect(resolveRoute({ backendInstanceId: 100n }, { ...none, routingMode: "aggregated" }, fronted)).toEqual({
      decode: { workerId: 100n, dpRank: 0 },
    });
  });

  it("a request without routing metadata goes to the local engine", () => {
    expect(resolveRoute({}, none, fronted)).toEqual({ decode: { workerId: undefined, dpRank: 0 } });
  });

  it("refuses another pod's worker and a DP rank it does not front with 503 naming the id", () => {
    const other = error(resolveRoute({ decodeWorkerId: 7n }, none, fronted));
    expect(other.status).toBe(503);
    expect(other.message).toContain("worker 7");
    const rank = error(resolveRoute({ decodeWorkerId: 100n, dpRank: 2 }, none, fronted));
    expect(rank.status).toBe(503);
    expect(rank.message).toContain("DP rank 2");
  });

  it("decode_worker_id wins over backend_instance_id", () => {
    expect(error(resolveRoute({ decodeWorkerId: 5n, backendInstanceId: 100n }, none, fronted)).message).toContain(
      "worker 5",
    );
  });

  it("disaggregated with a prefill id and address", () => {
    expect(
      resolveRoute(
        { decodeWorkerId: 100n, prefillWorkerId: 9n, prefillDpRank: 1 },
        { routingMode: "disaggregated", prefillerHostPort: "10.0.0.9:8000" },
        fronted,
      ),
    ).toEqual({
      decode: { workerId: 100n, dpRank: 0 },
      prefill: { workerId: 9n, dpRank: 1, hostPort: "10.0.0.9:8000" },
    });
  });

  it("an address alone (llm-d's header) is disaggregated", () => {
    expect(resolveRoute({}, { ...none, prefillerHostPort: "[fd00::1]:8000" }, fronted)).toMatchObject({
      prefill: { hostPort: "[fd00::1]:8000", workerId: undefined },
    });
  });

  it("malformed or contradictory metadata is 502 invalid_epp_metadata", () => {
    const cases: Array<[Parameters<typeof resolveRoute>[0], Parameters<typeof resolveRoute>[1], string]> = [
      [{}, { ...none, routingMode: "sideways" }, "neither"],
      [
        { prefillWorkerId: 1n },
        { routingMode: "disaggregated", prefillerHostPort: undefined },
        "x-prefiller-host-port",
      ],
      [{}, { routingMode: "disaggregated", prefillerHostPort: "h:1" }, "no prefill worker id"],
      [{}, { routingMode: "aggregated", prefillerHostPort: "h:1" }, "aggregated"],
      [{ prefillWorkerId: 1n }, { routingMode: "aggregated", prefillerHostPort: undefined }, "aggregated"],
      [{ prefillWorkerId: 1n }, none, "address is missing"],
      [{}, { ...none, prefillerHostPort: "" }, "empty"],
      [{}, { ...none, prefillerHostPort: "a:1, b:2" }, "several"],
      [{}, { ...none, prefillerHostPort: "no-port" }, "not a <host>:<port>"],
      [{}, { ...none, prefillerHostPort: "h:70000" }, "not a <host>:<port>"],
    ];
    for (const [fields, meta, text] of cases) {
      const refused = error(resolveRoute(fields, meta, fronted));
      expect(refused.status).toBe(502);
      expect(refused.code).toBe("invalid_epp_metadata");
      expect(refused.message).toContain(text);
    }
  });

  it("host:port forms", () => {
    expect(isHostPort("10.1.2.3:8000")).toBe(true);
    expect(isHostPort("pod-a.ns.svc:80")).toBe(true);
    expect(isHostPort("[::1]:8000")).toBe(true);
    expect(isHostPort("::1:8000")).toBe(false);
    expect(isHostPort("h:0")).toBe(false);
    expect(isHostPort("http://h:1")).toBe(false);
  });
});
