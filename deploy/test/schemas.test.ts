import { describe, expect, it } from "vitest";
import { renderAll, renderDir } from "./support/catalogue.js";
import { find, type K8sObject } from "./support/objects.js";
import { validateObject } from "./support/schemas.js";

function clone(object: K8sObject | undefined): K8sObject {
  if (!object) throw new Error("object not rendered");
  return structuredClone(object);
}

describe("schemas", () => {
  it("every rendered object validates against the schema of its kind", async () => {
    const problems = (await renderAll()).flatMap((set) =>
      set.objects.flatMap((object) => validateObject(object).map((problem) => `${set.name}: ${problem}`)),
    );
    expect(problems).toEqual([]);
  });

  describe("the validators reject what a cluster rejects", () => {
    it("a Deployment with a misspelled container field (strict field validation)", async () => {
      const deployment = clone(find(await renderDir("overlays/agg"), "Deployment", "dynamo-epp"));
      const container = (deployment.spec as { template: { spec: { containers: Record<string, unknown>[] } } }).template
        .spec.containers[0]!;
      container.readinesProbe = container.readinessProbe;
      expect(validateObject(deployment).join("\n")).toMatch(/readinesProbe: unknown field/);
    });

    it("a Service port that is not a number", async () => {
      const service = clone(find(await renderDir("overlays/agg"), "Service", "dynamo-epp"));
      (service.spec as { ports: { port: unknown }[] }).ports[0]!.port = "9002";
      expect(validateObject(service).join("\n")).toMatch(/ports\/0\/port: must be integer/);
    });

    it("a container port name longer than 15 characters", async () => {
      const deployment = clone(find(await renderDir("overlays/agg"), "Deployment", "dynamo-epp"));
      const spec = deployment.spec as { template: { spec: { containers: { ports: { name: string }[] }[] } } };
      spec.template.spec.containers[0]!.ports[0]!.name = "grpc-ext-proc-tls";
      expect(validateObject(deployment).join("\n")).toMatch(/port name grpc-ext-proc-tls is not an IANA service name/);
    });

    it("an InferencePool whose Service reference has no port (CEL rule of the CRD)", async () => {
      const pool = clone(find(await renderDir("overlays/agg"), "InferencePool", "dynamo-pool"));
      const ref = (pool.spec as { endpointPickerRef: Record<string, unknown> }).endpointPickerRef;
      delete ref.port;
      delete ref.kind;
      expect(validateObject(pool)).toEqual([
        "InferencePool/dynamo-pool /spec/endpointPickerRef: port is required when kind is 'Service' or unspecified (defaults to 'Service')",
      ]);
    });

    it("an InferencePool with a repeated target port, an unknown field or a bad failure mode", async () => {
      const pool = clone(find(await renderDir("overlays/agg"), "InferencePool", "dynamo-pool"));
      const spec = pool.spec as { targetPorts: { number: number }[]; endpointPickerRef: Record<string, unknown> };
      spec.targetPorts.push({ number: spec.targetPorts[0]!.number });
      expect(validateObject(pool)).toEqual(["InferencePool/dynamo-pool /spec/targetPorts: port number must be unique"]);
      spec.targetPorts.pop();
      spec.endpointPickerRef.failureMode = "Retry";
      (spec as Record<string, unknown>).targetPortNumber = 8000;
      const problems = validateObject(pool).join("\n");
      expect(problems).toMatch(/failureMode: must be equal to one of the allowed values/);
      expect(problems).toMatch(/\/spec: must NOT have additional properties \(targetPortNumber\)/);
    });

    it("AgentgatewayParameters with a daemonSet overlay for a Deployment (CEL rule of the CRD)", async () => {
      const parameters = clone(
        find(await renderDir("gateway/agentgateway"), "AgentgatewayParameters", "inference-gateway-params"),
      );
      (parameters.spec as Record<string, unknown>).daemonSet = { metadata: {} };
      expect(validateObject(parameters)).toEqual([
        "AgentgatewayParameters/inference-gateway-params /spec: daemonSet overlays are only valid when workload.kind is DaemonSet",
      ]);
    });

    it("a DestinationRule with an unknown TLS mode", async () => {
      const rule = clone(find(await renderDir("overlays/istio"), "DestinationRule", "dynamo-epp"));
      const settings = (rule.spec as { trafficPolicy: { portLevelSettings: { tls: { mode: string } }[] } })
        .trafficPolicy;
      settings.portLevelSettings[0]!.tls.mode = "PASSTHROUGH";
      expect(validateObject(rule).join("\n")).toMatch(/tls\/mode: must be equal to one of the allowed values/);
    });

    it("an HTTPRoute timeout that is not a Gateway API duration", async () => {
      const route = clone(find(await renderDir("overlays/agg"), "HTTPRoute", "dynamo-route"));
      (route.spec as { rules: { timeouts: { request: string } }[] }).rules[0]!.timeouts.request = "10 minutes";
      expect(validateObject(route).join("\n")).toMatch(/timeouts\/request: must match pattern/);
    });

    it("a label value with a slash and an object of a kind without a schema", async () => {
      const service = clone(find(await renderDir("overlays/agg"), "Service", "dynamo-epp"));
      service.metadata.labels = { "app.kubernetes.io/name": "dynamo/epp" };
      expect(validateObject(service).join("\n")).toMatch(
        /label app.kubernetes.io\/name=dynamo\/epp is not a valid value/,
      );
      const unknown: K8sObject = { apiVersion: "example.com/v1", kind: "Widget", metadata: { name: "w" } };
      expect(validateObject(unknown)[0]).toMatch(/no schema for example.com\/v1 Widget/);
    });
  });
});
