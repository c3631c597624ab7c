import { StaticDiscovery } from "@dynamo/discovery";
import { waitFor } from "@dynamo/testkit";
import { describe, expect, it } from "vitest";
import { PoolRegistry } from "../src/index.js";

describe("PoolRegistry: a decode pool and a prefill pool as one worker list", () => {
  it("lists the union, ready only while every pool is, following each pool's changes", async () => {
    const decode = new StaticDiscovery({
      text: "workers: [{ name: d0, http: 10.0.0.1:8000, role: decode }]",
      sourceName: "test",
    });
    const prefill = new StaticDiscovery({
      text: "workers: [{ name: p0, http: 10.0.0.2:8000, role: prefill }]",
      sourceName: "test",
    });
    const pools = new PoolRegistry([decode, prefill]);
    const changes: string[] = [];
    pools.on("change", (c) => changes.push(`${c.type} ${c.worker.name}`));
    await pools.start();
    await waitFor(() => pools.ready, "both pools");
    expect(
      pools
        .list()
        .map((w) => `${w.name}:${w.role}`)
        .sort(),
    ).toEqual(["d0:decode", "p0:prefill"]);
    expect(changes.sort()).toEqual(["added d0", "added p0"]);
    await pools.stop();
  });

  it("stays unready while a pool has not listed, keeping the other's workers", async () => {
    const decode = new StaticDiscovery({ text: "workers: [{ name: d0, http: 10.0.0.1:8000 }]", sourceName: "test" });
    const broken = new StaticDiscovery({ text: "workers: [ {", sourceName: "test" });
    const pools = new PoolRegistry([decode, broken]);
    const problems: string[] = [];
    pools.on("problem", (p) => problems.push(p.message));
    await pools.start();
    await waitFor(() => decode.ready, "the decode pool");
    expect(pools.ready).toBe(false);
    expect(pools.list().map((w) => w.name)).toEqual(["d0"]);
    expect(problems.length).toBeGreaterThan(0);
    await pools.stop();
  });
});
