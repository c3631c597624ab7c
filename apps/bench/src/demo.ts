import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Progress, machineDescription, round } from "./framework.js";
import { runLive } from "./live/compare.js";
import { liveOptions } from "./live/options.js";
import { comparisonLines, comparisonResult, verdict } from "./live/present.js";
import { renderReport } from "./report.js";
import { simulateSlice } from "./live/simulated.js";

/**
 * `./run main`: the live comparison on its defaults (4 simulated workers, a short slice of the Mooncake conversation
 * trace), KV-aware routing against round-robin through the real endpoint picker, printed as a comparison; the HTML
 * report goes to `reports/` (ignored by git). The options of `npm run bench -- live` work here too.
 */
async function main(args: readonly string[]): Promise<number> {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
  const progress = new Progress("main");
  const options = liveOptions(args, root, progress);
  const started = performance.now();
  progress.note(
    "KV-aware routing against round-robin, live: simulated vLLM workers, a frontend sidecar each, the endpoint picker and a gateway, all on this machine",
  );
  const comparison = await runLive(options, simulateSlice);
  const result = comparisonResult(comparison, options);
  const command = ["./run main", ...args].join(" ");
  const file = join(root, "reports", "live.html");
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, renderReport("live", result, machineDescription(), command));

  console.log(
    `\n${comparison.slice.requests} requests of ${options.conversations} Mooncake conversations at ${options.rate}/s over ${options.workers} workers:\n`,
  );
  for (const line of comparisonLines(comparison)) console.log(line);
  console.log(`\n${verdict(comparison)}`);
  console.log(`\nReport: ${file}`);
  console.log(`Took ${round((performance.now() - started) / 1000, 0)} s; every process started has been stopped.`);
  return comparison.kv.succeeded === comparison.kv.requests &&
    comparison.roundRobin.succeeded === comparison.roundRobin.requests
    ? 0
    : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exit(1);
  },
);
