import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { expect, it } from "vitest";

const here = fileURLToPath(new URL(".", import.meta.url));
const repository = join(here, "../../..");

it("the README's example runs as a program and prints what its comments say", async () => {
  const readme = readFileSync(join(here, "../README.md"), "utf8");
  const source = /```ts\n([\s\S]*?)```/.exec(readme)![1]!;
  const expected = [...source.matchAll(/console\.log\(.*\); \/\/ (.*)$/gm)].map((m) => m[1]!);
  expect(expected.length).toBeGreaterThan(0);
  // Under the repository's node_modules, so that the package resolves as it does for a user.
  const dir = join(repository, "node_modules/.cache/http-server-readme");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "example.mts"), source);
  const { stdout } = await promisify(execFile)(
    join(repository, "node_modules/.bin/tsx"),
    ["--conditions=@dynamo/source", join(dir, "example.mts")],
    { timeout: 20_000 },
  );
  expect(stdout.trim().split("\n")).toEqual(expected);
});
