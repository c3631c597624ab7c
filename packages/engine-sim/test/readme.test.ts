import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";

// Every TypeScript example of the README runs, and prints what its `console.log(...); // …` comments say.
const here = fileURLToPath(new URL(".", import.meta.url));
const readme = readFileSync(join(here, "../README.md"), "utf8");
const examples = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
// Written under the repository's node_modules so that workspace packages resolve as they do for users.
const dir = join(here, "../../../node_modules/.cache/engine-sim-readme");

describe("README examples", () => {
  it("has examples", () => {
    expect(examples.length).toBeGreaterThanOrEqual(4);
  });

  examples.forEach((source, i) => {
    it(`example ${i + 1} runs and prints what it says`, async () => {
      const expected = [...source.matchAll(/console\.log\(.*\)[;,]? \/\/ (.*)$/gm)].map((m) => m[1]!.trim());
      const printed: string[] = [];
      const sink = `__readmeLog${i}`;
      (globalThis as Record<string, unknown>)[sink] = (...args: unknown[]) => printed.push(args.map(String).join(" "));
      mkdirSync(dir, { recursive: true });
      const file = join(dir, `example-${i + 1}.ts`);
      writeFileSync(file, source.replaceAll("console.log(", `(globalThis as any).${sink}(`));
      await import(pathToFileURL(file).href);
      if (expected.length > 0) expect(printed).toEqual(expected);
      else expect(printed.length).toBeGreaterThan(0);
    });
  });
});
