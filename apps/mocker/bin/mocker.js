#!/usr/bin/env node
// Runs the built bundle (`npm run build -w @dynamo/mocker`); in a source checkout without a build, runs
// the TypeScript sources through tsx, passing SIGTERM / SIGINT on to it.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const bundle = new URL("../dist/main.js", import.meta.url);
if (existsSync(fileURLToPath(bundle))) {
  await import(bundle.href);
} else {
  const tsx = createRequire(import.meta.url).resolve("tsx/cli");
  const main = fileURLToPath(new URL("../src/main.ts", import.meta.url));
  const child = spawn(process.execPath, [tsx, "--conditions=@dynamo/source", main, ...process.argv.slice(2)], {
    stdio: "inherit",
  });
  for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => child.kill(signal));
  child.on("exit", (code, signal) => process.exit(code ?? (signal === null ? 1 : 128)));
}
