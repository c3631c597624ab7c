import { readdirSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const root = fileURLToPath(new URL(".", import.meta.url));
const projectDirs = [
  ...["packages", "apps"].flatMap((group) =>
    readdirSync(join(root, group), { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => join(group, entry.name)),
  ),
  // The Kubernetes manifests and their offline validation (deploy/test).
  "deploy",
];

// One root config: every package and app, and deploy/, is a vitest project named after its folder, so `vitest run`
// covers the monorepo and `--project <name>` runs one. Workspace packages resolve to their TypeScript
// sources through the `@dynamo/source` export condition, so tests never need a build.
export default defineConfig({
  resolve: { conditions: ["@dynamo/source"] },
  ssr: { resolve: { conditions: ["@dynamo/source"], externalConditions: ["@dynamo/source"] } },
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    projects: projectDirs.map((dir) => ({
      extends: true,
      test: {
        name: basename(dir),
        root: join(root, dir),
        include: ["test/**/*.test.ts"],
      },
    })),
  },
});
