#!/usr/bin/env node
import { describeProblem } from "./registry.js";
import { DiscoveryConfigError } from "./env.js";
import { USAGE, changeLine, parseCommandLine, workersJson, workersTable } from "./cli-commands.js";

/** Runs the operator command; returns the exit code (0 ok, 1 not ready in time, 2 usage). */
async function main(argv: readonly string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(USAGE);
    return 0;
  }
  let parsed;
  try {
    parsed = await parseCommandLine(argv, process.env);
  } catch (error) {
    if (!(error instanceof DiscoveryConfigError) && !(error instanceof TypeError)) throw error;
    console.error(`dynamo-discovery: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  const { registry, command, json, timeoutMs } = parsed;
  registry.on("problem", (problem) => console.error(`problem: ${describeProblem(problem)}`));
  try {
    await registry.start();
    await registry.whenReady(timeoutMs);
  } catch (error) {
    console.error(`dynamo-discovery: ${(error as Error).message}`);
    await registry.stop();
    return 1;
  }
  const workers = registry.list();
  console.log(json ? workersJson(workers) : workersTable(workers));
  if (command === "list") {
    await registry.stop();
    return 0;
  }
  const stop = new AbortController();
  process.once("SIGINT", () => stop.abort());
  process.once("SIGTERM", () => stop.abort());
  // Backends do not keep the process alive on their own (their timers and watchers are unref'd).
  const keepAlive = setInterval(() => undefined, 60_000);
  for await (const change of registry.changes({ replay: false, signal: stop.signal })) {
    console.log(json ? workersJson(change) : changeLine(change));
  }
  clearInterval(keepAlive);
  await registry.stop();
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
