import { describe, expect, it } from "vitest";
import {
  labelSelectorOf,
  parseInferencePool,
  podWorkerId,
  workersFromPod,
  type PodMapping,
  type PodObject,
} from "../src/index.js";

const mapping: PodMapping = { mode: "pod", roleLabel: "role", kvEventPort: 5557 };

function readyPod(
  overrides: Partial<PodObject["status"]> = {},
  ports = [{ name: "http", containerPort: 8000 }],
): PodObject {
  return {
    metadata: { name: "p", labels: { "nvidia.com/dynamo-namespace": "ns", role: "prefill" } },
    spec: { containers: [{ name: "main", ports }] },
    status: {
      podIP: "10.0.0.1",
      conditions: [{ type: "Ready", status: "True" }],
      containerStatuses: [{ name: "main", ready: true }],
      ...overrides,
    },
  };
}

describe("workersFromPod", () => {
  it("gives each worker the token budget of its role, else the general one", () => {
    const budgets = { ...mapping, totalKvBlocks: 512, maxNumBatchedTokens: 8192, prefillMaxNumBatchedTokens: 16384 };
    const capacity = (m: PodMapping) => (workersFromPod(readyPod(), m) as { capacity?: unknown }[])[0]!.capacity;
    expect(capacity(budgets)).toEqual({ totalKvBlocks: 512, maxNumBatchedTokens: 16384 }); // a prefill pod
    expect(capacity({ ...budgets, role: "decode" })).toEqual({ totalKvBlocks: 512, maxNumBatchedTokens: 8192 });
    expect(capacity({ ...budgets, role: "decode", decodeMaxNumBatchedTokens: 4096 })).toEqual({
      totalKvBlocks: 512,
      maxNumBatchedTokens: 4096,
    });
    expect(capacity(mapping)).toBeUndefined();
  });

  it("says why a pod is skipped", () => {
    expect(workersFromPod({ metadata: {} }, mapping)).toBe("unnamed");
    expect(workersFromPod({ ...readyPod(), metadata: { name: "p", deletionTimestamp: new Date() } }, mapping)).toBe(
      "terminating",
    );
    expect(workersFromPod(readyPod({ podIP: "" }), mapping)).toBe("no-ip");
    expect(workersFromPod(readyPod({ conditions: [{ type: "Ready", status: "False" }] }), mapping)).toBe("not-ready");
    expect(workersFromPod(readyPod({}, []), mapping)).toBe("no-http-port");
    expect(workersFromPod(readyPod(), { ...mapping, namespacePrefix: "other" })).toBe("namespace-mismatch");
    expect(
      workersFromPod(readyPod({ containerStatuses: [{ name: "main", ready: false }] }), {
        ...mapping,
        mode: "container",
      }),
    ).toBe("not-ready");
  });

  it("takes the role from the label, KV-event ports from named container ports, and brackets IPv6", () => {
    const pod = readyPod({ podIP: "fd00::5" }, [
      { name: "http", containerPort: 8000 },
      { name: "kv-events", containerPort: 7000 },
      { name: "kv-replay", containerPort: 7100 },
    ]);
    const workers = workersFromPod(pod, { ...mapping, targetPorts: [9000, 9001] });
    expect(workers).toEqual([
      {
        id: podWorkerId("p"),
        name: "p",
        role: "prefill",
        namespace: "ns",
        component: "",
        httpEndpoint: "[fd00::5]:9000",
        rankHttpEndpoints: ["[fd00::5]:9000", "[fd00::5]:9001"],
        dpSize: 2,
        dpStartRank: 0,
        kvEvents: {
          endpoints: ["tcp://[fd00::5]:7000", "tcp://[fd00::5]:7001"],
          replayEndpoints: ["tcp://[fd00::5]:7100", "tcp://[fd00::5]:7101"],
        },
      },
    ]);
    expect((workersFromPod(pod, { ...mapping, role: "decode" }) as { role: string }[])[0]!.role).toBe("decode");
  });
});

describe("InferencePool parsing", () => {
  it("reads selector and target ports and rejects malformed pools", () => {
    expect(
      parseInferencePool({ spec: { selector: { matchLabels: { b: "2", a: "1" } }, targetPorts: [{ number: 8000 }] } }),
    ).toEqual({
      matchLabels: { b: "2", a: "1" },
      targetPorts: [8000],
    });
    expect(parseInferencePool({ spec: { selector: { matchLabels: {} }, targetPorts: [{ number: 1 }] } })).toMatchObject(
      { error: /matchLabels/ },
    );
    expect(
      parseInferencePool({ spec: { selector: { matchLabels: { a: "1" } }, targetPorts: [{ number: 0 }] } }),
    ).toMatchObject({ error: /targetPorts/ });
    expect(parseInferencePool(null)).toMatchObject({ error: /matchLabels/ });
    expect(labelSelectorOf({ b: "2", a: "1" })).toBe("a=1,b=2");
  });
});
