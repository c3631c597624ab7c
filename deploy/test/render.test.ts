import { describe, expect, it } from "vitest";
import { COMPOSITIONS, isServingDeployment, renderAll } from "./support/catalogue.js";
import { MIN_KUSTOMIZE_MAJOR, kustomizationDirs, kustomizeVersion } from "./support/render.js";

describe("kustomize rendering", () => {
  it(`runs on kubectl with kustomize v${MIN_KUSTOMIZE_MAJOR} or newer`, async () => {
    const version = await kustomizeVersion();
    const major = Number(/^v?(\d+)/.exec(version)?.[1]);
    expect(
      major,
      `kubectl's kustomize is ${version}; the manifests need v${MIN_KUSTOMIZE_MAJOR}+ (kubectl 1.27+)`,
    ).toBeGreaterThanOrEqual(MIN_KUSTOMIZE_MAJOR);
  });

  it("finds the overlays, recipes and gateway kustomizations", () => {
    const paths = kustomizationDirs().map((dir) => dir.path);
    for (const expected of [
      "base",
      "overlays/agg",
      "overlays/disagg",
      "overlays/istio",
      "overlays/mocker",
      "overlays/mocker-disagg",
      "recipes/qwen3-0.6b/agg",
      "recipes/qwen3-0.6b/disagg",
      "recipes/qwen3-0.6b/model-cache",
      "recipes/llama-3-70b/agg",
      "recipes/llama-3-70b/disagg-single-node",
      "recipes/llama-3-70b/model-cache",
      "gateway/agentgateway",
      "gateway/istio",
    ]) {
      expect(paths).toContain(expected);
    }
  });

  it("renders every kustomization and documented composition into objects", async () => {
    const sets = await renderAll();
    expect(sets.length).toBeGreaterThanOrEqual(kustomizationDirs().filter((d) => d.kind === "Kustomization").length);
    for (const set of sets) expect(set.objects.length, set.name).toBeGreaterThan(0);
  });

  it("every component is used by a kustomization or a documented composition", () => {
    const dirs = kustomizationDirs();
    const used = new Set([...dirs.flatMap((dir) => dir.includes), ...COMPOSITIONS.flatMap((c) => c.components)]);
    const unused = dirs.filter((dir) => dir.kind === "Component" && !used.has(dir.path)).map((dir) => dir.path);
    expect(unused).toEqual([]);
  });

  it("every overlay and model recipe is a complete deployment: EPP, pool, route and workers", async () => {
    const serving = (await renderAll()).filter((set) => isServingDeployment(set.name));
    expect(serving.length).toBeGreaterThanOrEqual(10);
    for (const set of serving) {
      const kinds = set.objects.map((object) => `${object.kind}/${object.metadata.name}`);
      expect(kinds, set.name).toEqual(
        expect.arrayContaining([
          "Deployment/dynamo-epp",
          "Service/dynamo-epp",
          "InferencePool/dynamo-pool",
          "HTTPRoute/dynamo-route",
        ]),
      );
      expect(kinds.filter((kind) => kind.startsWith("Deployment/dynamo-worker")).length, set.name).toBeGreaterThan(0);
    }
  });
});
