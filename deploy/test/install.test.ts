import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { renderDir } from "./support/catalogue.js";
import { GATEWAY_CHECKS } from "./support/checks-gateway.js";
import { find, ofKind, spec, type K8sObject } from "./support/objects.js";
import { DEPLOY_DIR, parseObjects } from "./support/render.js";
import { validateObject } from "./support/schemas.js";

const run = promisify(execFile);
const SCRIPT = join(DEPLOY_DIR, "install.sh");

/** Where a command is on this machine's PATH. */
function which(command: string): string {
  return execFileSync("sh", ["-c", `command -v ${command}`], { encoding: "utf8" }).trim();
}
const BASH = which("bash");

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

async function install(args: string[], env: Record<string, string> = {}, path = process.env.PATH!): Promise<Outcome> {
  try {
    const { stdout, stderr } = await run(BASH, [SCRIPT, ...args], { env: { PATH: path, ...env } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/** The commands a dry run prints (as `# ` comments), without the summary line. */
function commands(stdout: string): string[] {
  return stdout
    .split("\n")
    .filter((line) => line.startsWith("# ") && !/^# (install|uninstall): /.test(line))
    .map((line) => line.slice(2));
}

describe("deploy/install.sh", () => {
  it("is valid bash", async () => {
    await expect(run(BASH, ["-n", SCRIPT])).resolves.toBeDefined();
  });

  it("--dry-run prints the seed's install steps, pinned and idempotent, without a cluster", async () => {
    const { code, stdout } = await install(["--dry-run"], { NAMESPACE: "my-model" });
    expect(code).toBe(0);
    const steps = commands(stdout);
    expect(steps).toEqual([
      "kubectl create namespace my-model --dry-run=client -o yaml | kubectl apply -f -",
      "kubectl apply --server-side --force-conflicts -f https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.5.1/standard-install.yaml",
      "kubectl apply --server-side --force-conflicts -f https://github.com/kubernetes-sigs/gateway-api-inference-extension/releases/download/v1.6.2/manifests.yaml",
      "helm upgrade --install agentgateway-crds oci://cr.agentgateway.dev/charts/agentgateway-crds --version v1.0.0 --namespace agentgateway-system --create-namespace",
      "helm upgrade --install agentgateway oci://cr.agentgateway.dev/charts/agentgateway --version v1.0.0 --namespace agentgateway-system --set inferenceExtension.enabled=true --wait",
      `kubectl apply --server-side -n my-model -k ${join(DEPLOY_DIR, "gateway", "agentgateway")}`,
      "kubectl wait gateway/inference-gateway -n my-model --for=condition=Programmed --timeout=300s",
    ]);
  });

  it("--dry-run prints valid manifests: the Gateway inference-gateway and the parameters it references", async () => {
    const { stdout } = await install(["--dry-run"], { NAMESPACE: "my-model" });
    const objects = parseObjects(stdout, "install.sh --dry-run");
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
      "AgentgatewayParameters/inference-gateway-params",
      "Gateway/inference-gateway",
    ]);
    expect(objects.flatMap(validateObject)).toEqual([]);
    expect(Object.values(GATEWAY_CHECKS).flatMap((check) => check(objects))).toEqual([]);
  });

  it("installs the Gateway every overlay's HTTPRoute attaches to", async () => {
    const { stdout } = await install(["--dry-run"], { NAMESPACE: "my-model" });
    const gateway = ofKind(parseObjects(stdout, "install.sh --dry-run"), "Gateway")[0]!;
    const listeners = spec<{ listeners: { port: number; protocol: string }[] }>(gateway).listeners;
    const route = find(await renderDir("overlays/agg"), "HTTPRoute", "dynamo-route")!;
    const parents = spec<{ parentRefs: { name: string; namespace?: string }[] }>(route).parentRefs;
    expect(parents).toEqual([expect.objectContaining({ name: gateway.metadata.name })]);
    expect(parents[0]!.namespace).toBeUndefined();
    expect(listeners).toEqual([{ name: "http", port: 80, protocol: "HTTP" }]);
  });

  it("GATEWAY_CLASS=istio skips agentgateway and installs an Istio Gateway without parameters", async () => {
    const { code, stdout } = await install(["install", "--dry-run"], { NAMESPACE: "serving", GATEWAY_CLASS: "istio" });
    expect(code).toBe(0);
    expect(commands(stdout).filter((step) => step.startsWith("helm"))).toEqual([]);
    expect(commands(stdout)).toContain("kubectl get gatewayclass istio");
    const objects: K8sObject[] = parseObjects(stdout, "install.sh --dry-run");
    expect(objects.map((o) => spec<{ gatewayClassName: string }>(o).gatewayClassName)).toEqual(["istio"]);
    expect([...objects.flatMap(validateObject), ...Object.values(GATEWAY_CHECKS).flatMap((c) => c(objects))]).toEqual(
      [],
    );
  });

  it("takes other releases from the environment", async () => {
    const { stdout } = await install(["--dry-run"], {
      NAMESPACE: "m",
      GATEWAY_API_VERSION: "v1.4.0",
      GAIE_VERSION: "v1.5.0",
      AGENTGATEWAY_VERSION: "v1.1.0",
    });
    const steps = commands(stdout).join("\n");
    expect(steps).toContain("gateway-api/releases/download/v1.4.0/standard-install.yaml");
    expect(steps).toContain("gateway-api-inference-extension/releases/download/v1.5.0/manifests.yaml");
    expect(steps).toContain("agentgateway-crds --version v1.1.0");
  });

  it("uninstall mirrors the seed: Gateway, agentgateway releases, its namespace, then the CRDs", async () => {
    const { code, stdout } = await install(["uninstall", "--dry-run"], { NAMESPACE: "my-model" });
    expect(code).toBe(0);
    expect(commands(stdout)).toEqual([
      "kubectl delete gateway inference-gateway -n my-model --ignore-not-found",
      "kubectl delete agentgatewayparameters inference-gateway-params -n my-model --ignore-not-found",
      "helm uninstall agentgateway --namespace agentgateway-system",
      "helm uninstall agentgateway-crds --namespace agentgateway-system",
      "kubectl delete namespace agentgateway-system --ignore-not-found",
      "kubectl delete -f https://github.com/kubernetes-sigs/gateway-api-inference-extension/releases/download/v1.6.2/manifests.yaml --ignore-not-found",
      "kubectl delete -f https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.5.1/standard-install.yaml --ignore-not-found",
    ]);
    const kept = await install(["uninstall", "--dry-run"], { NAMESPACE: "my-model", KEEP_CRDS: "1" });
    expect(commands(kept.stdout).filter((step) => step.includes("releases/download"))).toEqual([]);
  });

  it("refuses to run without a namespace, with an unknown argument or gateway class", async () => {
    const noNamespace = await install(["--dry-run"]);
    expect(noNamespace.code).toBe(2);
    expect(noNamespace.stderr).toContain("NAMESPACE is not set: export NAMESPACE=");
    const unknown = await install(["--dryrun"], { NAMESPACE: "m" });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown argument '--dryrun'");
    const badClass = await install(["--dry-run"], { NAMESPACE: "m", GATEWAY_CLASS: "envoy" });
    expect(badClass.code).toBe(2);
    expect(badClass.stderr).toContain("GATEWAY_CLASS='envoy' must be agentgateway or istio");
  });

  describe("without helm on PATH", () => {
    const bin = mkdtempSync(join(tmpdir(), "install-path-"));
    for (const tool of ["kubectl", "dirname"]) symlinkSync(which(tool), join(bin, tool));
    afterAll(() => rmSync(bin, { recursive: true, force: true }));

    it("stops before touching the cluster, naming what is missing", async () => {
      const { code, stdout, stderr } = await install([], { NAMESPACE: "m" }, bin);
      expect(code).toBe(1);
      expect(stderr).toContain("'helm' is required but not on PATH");
      expect(stdout).toBe("");
    });
  });
});
