import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { expect, it } from "vitest";

const root = fileURLToPath(new URL("../../..", import.meta.url));

it("the demo (./run main) routes the conversations and prints its verdict", { timeout: 120_000 }, async () => {
  const { stdout } = await promisify(execFile)(
    "npx",
    ["tsx", "--conditions=@dynamo/source", "packages/router-service/examples/demo.ts"],
    { cwd: root },
  );
  const rows = stdout.split("\n").filter((line) => /^\s+\d+\s+\S+ turn \d/.test(line));
  expect(rows).toHaveLength(18);
  expect(stdout).toMatch(/Verdict:/);
  const [, back, followUps] = /(\d+) of (\d+) follow-up turns went back/.exec(stdout)!;
  expect(Number(followUps)).toBe(12);
  // Routing on cache beats round robin on the same workload.
  const [, kv, rr] = /(\d+)% of the prompt tokens were already cached .* round robin on the same workload: (\d+)%/.exec(
    stdout,
  )!;
  expect(Number(kv)).toBeGreaterThan(Number(rr));
  expect(Number(back)).toBeGreaterThan(6);
});
