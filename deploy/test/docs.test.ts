import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { isServingDeployment } from "./support/catalogue.js";
import { GATEWAY_CHECKS } from "./support/checks-gateway.js";
import { SERVING_CHECKS } from "./support/checks-serving.js";
import { workloadChecks } from "./support/checks-workloads.js";
import { allContainers, find, ofKind, type K8sObject } from "./support/objects.js";
import { DEPLOY_DIR, REPO_DIR, kustomizationDirs, render } from "./support/render.js";
import { validateObject } from "./support/schemas.js";
import { epp } from "./support/serving.js";

const GUIDE = readFileSync(join(REPO_DIR, "docs", "deploy.md"), "utf8");
const VARIABLES = { NAMESPACE: "my-model", REGISTRY: "ghcr.io/my-org" };

/** The fenced code blocks of the guide, with their language. */
function codeBlocks(language: string): string[] {
  return [...GUIDE.matchAll(/```(\w*)\n([\s\S]*?)```/g)].filter((m) => m[1] === language).map((m) => m[2]!);
}

function substitute(text: string): string {
  return text.replace(/\$\{(\w+)\}/g, (whole, name: string) => VARIABLES[name as keyof typeof VARIABLES] ?? whole);
}

const scratch = mkdtempSync(join(tmpdir(), "deploy-guide-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** The guide's own kustomization (section 6), written as a user would, next to a copy-free deploy/ path. */
async function renderGuideKustomization(extra: Record<string, unknown> = {}): Promise<K8sObject[]> {
  const block = codeBlocks("bash").find((b) => b.includes("cat > my-deployment/kustomization.yaml <<EOF"));
  if (!block) throw new Error("docs/deploy.md has no my-deployment/kustomization.yaml example");
  const text = substitute(/<<EOF\n([\s\S]*?)\nEOF/.exec(block)![1]!);
  const dir = mkdtempSync(join(scratch, "my-deployment-"));
  const kustomization = { ...(parseYaml(text) as Record<string, unknown>), ...extra };
  const rewrite = (path: string) => path.replace(/^\.\.\/deploy\//, `${relative(dir, DEPLOY_DIR)}/`);
  kustomization.resources = (kustomization.resources as string[]).map(rewrite);
  kustomization.components = (kustomization.components as string[]).map(rewrite);
  writeFileSync(join(dir, "kustomization.yaml"), JSON.stringify(kustomization));
  return render(dir);
}

describe("docs/deploy.md", () => {
  it("names only paths that exist", () => {
    const paths = new Set([...GUIDE.matchAll(/\bdeploy\/[\w./-]*[\w/]/g)].map((m) => m[0].replace(/\/\*$/, "")));
    expect(paths.size).toBeGreaterThan(10);
    expect([...paths].filter((path) => !existsSync(join(REPO_DIR, path.replace(/\/\*.*$/, ""))))).toEqual([]);
  });

  it("applies and deletes only kustomizations that exist, and shows every overlay and recipe", () => {
    const dirs = kustomizationDirs()
      .filter((dir) => dir.kind === "Kustomization")
      .map((dir) => dir.path);
    const applied = [...GUIDE.matchAll(/kubectl (?:apply|delete) -k deploy\/(\S+)/g)].map((m) => m[1]!);
    expect(applied.filter((path) => !dirs.includes(path))).toEqual([]);
    const deployable = dirs.filter((path) => isServingDeployment(path) || /^recipes\/[^/]+\/model-cache$/.test(path));
    const shown = new Set([...applied, ...[...GUIDE.matchAll(/deploy\/([\w./-]+)/g)].map((m) => m[1]!)]);
    expect(deployable.filter((path) => !shown.has(path))).toEqual([]);
  });

  it("its own kustomization renders valid and consistent: namespace, registry, knobs, components", async () => {
    const objects = await renderGuideKustomization();
    const { noNamespaces: _namespaced, ...workloads } = workloadChecks();
    const checks = { ...workloads, ...SERVING_CHECKS, ...GATEWAY_CHECKS };
    const problems = Object.entries(checks).flatMap(([name, check]) => check(objects).map((p) => `${name}: ${p}`));
    expect([...objects.flatMap(validateObject), ...problems]).toEqual([]);
    expect(objects.filter((o) => o.metadata.namespace !== "my-model").map((o) => o.kind)).toEqual([]);
    const images = allContainers(objects).map((ref) => ref.container.image);
    expect(images).toContain("ghcr.io/my-org/epp:0.1.0");
    expect(images).toContain("ghcr.io/my-org/frontend:0.1.0");
    expect(epp(objects).env.get("DYN_ROUTER_TEMPERATURE")?.value).toBe("0.1");
    expect(epp(objects).env.get("DYN_ENFORCE_DISAGG")?.value).toBe("true");
    expect(ofKind(objects, "DestinationRule").map((o) => o.metadata.name)).toEqual(["dynamo-epp"]);
    expect((find(objects, "Deployment", "dynamo-worker-decode")!.spec as { replicas: number }).replicas).toBe(4);
  });

  it("its startup-probe patch raises the EPP's allowance to 60 minutes", async () => {
    const block = codeBlocks("yaml").find((b) => b.includes("startupProbe/failureThreshold"));
    const patches = (parseYaml(block!) as { patches: unknown[] }).patches;
    const objects = await renderGuideKustomization({ patches });
    const container = allContainers(objects).find((ref) => ref.container.name === "epp")!;
    expect(container.container.startupProbe).toMatchObject({ periodSeconds: 10, failureThreshold: 360 });
  });

  it("its sample chat request is a valid OpenAI chat body", () => {
    const block = codeBlocks("bash").find((b) => b.includes("/v1/chat/completions"))!;
    const body = /-d '([\s\S]*?)'\n/.exec(block.replace(`'"\${MODEL_NAME}"'`, "Qwen/Qwen3-0.6B"))![1]!;
    const request = JSON.parse(body) as {
      model: string;
      messages: { role: string; content: string }[];
      max_tokens: number;
    };
    expect(request.model).toBe("Qwen/Qwen3-0.6B");
    expect(request.messages).toHaveLength(1);
    expect(request.messages[0]!.role).toBe("user");
    expect(request.messages[0]!.content).toMatch(/^In the heart of Eldoria/);
    expect(request.max_tokens).toBe(30);
  });
});
