import { describe, expect, it } from "vitest";
import { EndpointSubset, HeaderList, parseHostPort, servedEndpointOf, subsetHintOf } from "../src/index.js";

const served = (value: unknown) =>
  servedEndpointOf({ "envoy.lb": { "x-gateway-destination-endpoint-served": value as never } });

describe("served endpoint", () => {
  it.each([
    ["a string", "10.0.0.1:8000", "10.0.0.1:8000"],
    ["a comma-separated string (last entry)", "10.0.0.1:8000, 10.0.0.2:8000", "10.0.0.2:8000"],
    ["a list (last non-blank)", ["10.0.0.1:8000", "10.0.0.3:8000", " "], "10.0.0.3:8000"],
    ["a blank string", "   ", undefined],
    ["an empty list", [], undefined],
    ["bracketed IPv6", "[fd00::1]:8000", "[fd00::1]:8000"],
    ["a number", 5, undefined],
  ])("reads %s", (_name, value, expected) => {
    expect(served(value)).toBe(expected);
  });

  it("is absent without the namespace", () => {
    expect(servedEndpointOf({})).toBeUndefined();
  });
});

describe("subset hint", () => {
  const hint = (value: unknown) =>
    subsetHintOf({ "envoy.lb.subset_hint": { "x-gateway-destination-endpoint-subset": value as never } });

  it("reads lists and comma-separated strings; an empty string means no subset, an empty list allows nothing", () => {
    expect(hint(["10.0.0.1:8000", "10.0.0.2:8000"])?.entries).toEqual(["10.0.0.1:8000", "10.0.0.2:8000"]);
    expect(hint("10.0.0.1:8000,10.0.0.2:8000")?.entries).toEqual(["10.0.0.1:8000", "10.0.0.2:8000"]);
    expect(hint("")).toBeUndefined();
    expect(hint([])?.isEmpty).toBe(true);
    expect(subsetHintOf({})).toBeUndefined();
  });

  it("matches the full endpoint or the IP, IPv6 with or without brackets", () => {
    const subset = EndpointSubset.of(["10.0.0.1:8000", "[fd00::2]:9000", "fd00::3"]);
    expect(subset.allows("10.0.0.1:8000")).toBe(true);
    expect(subset.allows("10.0.0.1:8001")).toBe(true);
    expect(subset.allows("10.0.0.9:8000")).toBe(false);
    expect(subset.allows("[fd00::2]:8000")).toBe(true);
    expect(subset.allows("[FD00::3]:1")).toBe(true);
    expect(subset.allows("[fd00::4]:9000")).toBe(false);
  });

  it("intersects with another subset", () => {
    const both = EndpointSubset.of(["10.0.0.1", "10.0.0.2"]).and(EndpointSubset.of(["10.0.0.2:8000"]));
    expect(both.allows("10.0.0.2:8000")).toBe(true);
    expect(both.allows("10.0.0.1:8000")).toBe(false);
    expect(EndpointSubset.of(["10.0.0.1"]).and(EndpointSubset.of([])).isEmpty).toBe(true);
  });
});

describe("endpoints and headers", () => {
  it("parses host and port forms and rejects malformed ones", () => {
    expect(parseHostPort("10.0.0.1:8000")).toEqual({ host: "10.0.0.1", port: 8000 });
    expect(parseHostPort("[::1]:80")).toEqual({ host: "::1", port: 80 });
    expect(parseHostPort("::1")).toEqual({ host: "::1" });
    expect(parseHostPort("host")).toEqual({ host: "host" });
    expect(parseHostPort("10.0.0.1:0")).toBeUndefined();
    expect(parseHostPort("10.0.0.1:99999")).toBeUndefined();
    expect(parseHostPort("[::1")).toBeUndefined();
    expect(parseHostPort(" ")).toBeUndefined();
  });

  it("reads raw_value before value, keeps order and duplicates, lower-cases names", () => {
    const headers = HeaderList.fromWire({
      headers: [
        { key: "X-A", raw_value: Buffer.from("raw"), value: "ignored" },
        { key: "x-a", value: "second" },
        { key: "x-bad", raw_value: Buffer.from([0xff]) },
      ],
    });
    expect(headers.getAll("x-a")).toEqual(["raw", "second"]);
    expect(headers.get("X-A")).toBe("raw");
    expect(headers.get("x-bad")).toBe("\ufffd");
  });
});
