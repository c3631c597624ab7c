import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { renderAll } from "./support/catalogue.js";
import { PROJECT_IMAGE_PREFIX } from "./support/checks-workloads.js";
import { allContainers } from "./support/objects.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

interface Stage {
  readonly from: string;
  readonly name?: string;
  readonly instructions: { readonly keyword: string; readonly args: string }[];
}

/** A Dockerfile's stages with their instructions (continuation lines joined, comments dropped). */
function parseDockerfile(text: string): Stage[] {
  const lines = text
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
  const stages: { from: string; name?: string; instructions: Stage["instructions"][number][] }[] = [];
  for (const line of lines) {
    const [keyword = "", ...rest] = line.split(/\s+/);
    const args = rest.join(" ");
    if (keyword.toUpperCase() === "FROM") {
      const [from = "", as, name] = rest;
      stages.push({ from, ...(as?.toUpperCase() === "AS" && name !== undefined && { name }), instructions: [] });
    } else stages.at(-1)?.instructions.push({ keyword: keyword.toUpperCase(), args });
  }
  return stages;
}

/** The project's images the manifests run, as `name → tags`, with the container ports each is given. */
async function imagesInManifests(): Promise<Map<string, { tags: Set<string>; ports: Set<number> }>> {
  const images = new Map<string, { tags: Set<string>; ports: Set<number> }>();
  for (const set of await renderAll()) {
    for (const ref of allContainers(set.objects, { init: true })) {
      const image = ref.container.image ?? "";
      if (!image.startsWith(PROJECT_IMAGE_PREFIX)) continue;
      const [name = "", tag = ""] = image.slice(PROJECT_IMAGE_PREFIX.length).split(":");
      const entry = images.get(name) ?? { tags: new Set(), ports: new Set() };
      entry.tags.add(tag);
      for (const port of ref.container.ports ?? []) entry.ports.add(port.containerPort);
      images.set(name, entry);
    }
  }
  return images;
}

describe("container images", async () => {
  const images = await imagesInManifests();

  it("the manifests run the project's images (the EPP at least)", () => {
    expect([...images.keys()]).toContain("epp");
  });

  for (const [app, { tags, ports }] of images) {
    describe(`${PROJECT_IMAGE_PREFIX}${app}`, () => {
      const dockerfile = join(ROOT, "apps", app, "Dockerfile");
      const stages = () => parseDockerfile(readFileSync(dockerfile, "utf8"));
      const final = () => stages().at(-1)!;
      const args = (stage: Stage, keyword: string) =>
        stage.instructions.filter((i) => i.keyword === keyword).map((i) => i.args);

      it("is built by apps/<app>/Dockerfile and tagged with the app's version", () => {
        expect(existsSync(dockerfile), `${dockerfile} missing`).toBe(true);
        const { version } = JSON.parse(readFileSync(join(ROOT, "apps", app, "package.json"), "utf8")) as {
          version: string;
        };
        expect([...tags]).toEqual([version]);
      });

      it("builds the app's bundle in a build stage and runs it on a slim Node 20 as uid 1000", () => {
        const all = stages();
        expect(all.length).toBeGreaterThanOrEqual(2);
        expect(all.flatMap((s) => args(s, "RUN")).join("\n")).toContain(`npm run build --workspace apps/${app}`);
        expect(final().from).toMatch(/^node:20(\.\d+)*-[a-z]+-slim$/);
        expect(args(final(), "USER")).toEqual(["1000:1000"]);
        // No build tool chain or dev dependency in the runtime stage: only the bundle and its own dependencies.
        expect(args(final(), "RUN")).toEqual([]);
        expect(args(final(), "COPY").every((a) => a.startsWith("--from="))).toBe(true);
        expect(args(final(), "ENTRYPOINT")).toEqual(['["node", "/app/main.js"]']);
      });

      it("exposes every port the manifests give its containers", () => {
        const exposed = new Set(args(final(), "EXPOSE").flatMap((a) => a.split(/\s+/).map(Number)));
        expect([...ports].filter((p) => !exposed.has(p))).toEqual([]);
      });
    });
  }

  it("the EPP image takes no arguments: its configuration is the environment", () => {
    const stage = parseDockerfile(readFileSync(join(ROOT, "apps/epp/Dockerfile"), "utf8")).at(-1)!;
    expect(stage.instructions.filter((i) => i.keyword === "CMD")).toEqual([]);
  });
});
