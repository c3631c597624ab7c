// Consistency checks of the gateway side: the Istio DestinationRule that lets a mesh talk to the EPP's own
// TLS, the AgentgatewayParameters that keep the sidecar out of the gateway proxy, and the Gateway that
// references them.
import type { Check } from "./checks-workloads.js";
import { EPP_PORTS } from "./checks-serving.js";
import { describe, find, ofKind, spec } from "./objects.js";

interface TlsSettings {
  mode?: string;
  insecureSkipVerify?: boolean;
}

interface DestinationRuleSpec {
  host: string;
  trafficPolicy?: { tls?: TlsSettings; portLevelSettings?: { port?: { number?: number }; tls?: TlsSettings }[] };
}

/** A DestinationRule, when rendered, originates TLS to the EPP's ext_proc port without verifying the self-signed certificate. */
export const destinationRuleMatchesEpp: Check = (objects) =>
  ofKind(objects, "DestinationRule").flatMap((rule) => {
    const ruleSpec = spec<DestinationRuleSpec>(rule);
    const service = ruleSpec.host.split(".")[0]!;
    const problems: string[] = [];
    const fqdn = /^[a-z0-9-]+(\.[a-z0-9-]+\.svc\.cluster\.local)?$/.test(ruleSpec.host);
    if (!find(objects, "Service", service) || !fqdn)
      problems.push(`${describe(rule)}: host ${ruleSpec.host} is not a rendered Service`);
    const pool = ofKind(objects, "InferencePool")[0];
    const picker = pool && spec<{ endpointPickerRef: { name: string } }>(pool).endpointPickerRef.name;
    if (picker !== undefined && picker !== service)
      problems.push(`${describe(rule)}: host ${service} is not the endpoint picker ${picker}`);
    const portTls = ruleSpec.trafficPolicy?.portLevelSettings?.find((s) => s.port?.number === EPP_PORTS.extProc)?.tls;
    const tls = portTls ?? ruleSpec.trafficPolicy?.tls;
    if (tls?.mode !== "SIMPLE" || tls.insecureSkipVerify !== true) {
      problems.push(
        `${describe(rule)}: port ${EPP_PORTS.extProc} needs tls mode SIMPLE with insecureSkipVerify (got ${JSON.stringify(tls ?? null)})`,
      );
    }
    for (const setting of ruleSpec.trafficPolicy?.portLevelSettings ?? []) {
      if (setting.port?.number !== EPP_PORTS.extProc && setting.tls?.mode === "SIMPLE") {
        problems.push(`${describe(rule)}: port ${setting.port?.number} is plain text on the EPP, not TLS`);
      }
    }
    return problems;
  });

/** AgentgatewayParameters, when rendered, stamp `sidecar.istio.io/inject: "false"` on the proxy pods. */
export const parametersExcludeSidecar: Check = (objects) =>
  ofKind(objects, "AgentgatewayParameters").flatMap((parameters) => {
    const annotations = spec<{
      deployment?: { spec?: { template?: { metadata?: { annotations?: Record<string, string> } } } };
    }>(parameters).deployment?.spec?.template?.metadata?.annotations;
    return annotations?.["sidecar.istio.io/inject"] === "false"
      ? []
      : [`${describe(parameters)} does not keep the Istio sidecar out of the gateway proxy`];
  });

interface GatewaySpec {
  gatewayClassName: string;
  infrastructure?: { parametersRef?: { group: string; kind: string; name: string } };
  listeners: { name: string; port: number; protocol: string }[];
}

/** The Gateway is `inference-gateway` with an HTTP listener, and its parametersRef resolves in the same set. */
export const gatewayComplete: Check = (objects) =>
  ofKind(objects, "Gateway").flatMap((gateway) => {
    const gatewaySpec = spec<GatewaySpec>(gateway);
    const problems: string[] = [];
    if (gateway.metadata.name !== "inference-gateway")
      problems.push(`${describe(gateway)}: the HTTPRoutes attach to inference-gateway`);
    if (!gatewaySpec.listeners.some((listener) => listener.protocol === "HTTP"))
      problems.push(`${describe(gateway)}: no HTTP listener`);
    const ref = gatewaySpec.infrastructure?.parametersRef;
    if (gatewaySpec.gatewayClassName === "agentgateway") {
      if (!ref || ref.group !== "agentgateway.dev" || !find(objects, ref.kind, ref.name)) {
        problems.push(
          `${describe(gateway)}: parametersRef ${JSON.stringify(ref ?? null)} does not resolve to rendered AgentgatewayParameters`,
        );
      }
    } else if (ref) {
      problems.push(
        `${describe(gateway)}: class ${gatewaySpec.gatewayClassName} does not take agentgateway parameters`,
      );
    }
    return problems;
  });

export const GATEWAY_CHECKS: Record<string, Check> = {
  destinationRuleMatchesEpp,
  parametersExcludeSidecar,
  gatewayComplete,
};
