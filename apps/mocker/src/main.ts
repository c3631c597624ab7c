import { CliError, parseCli, usage } from "./cli.js";
import { startMocker } from "./mocker.js";

/**
 * The mocker process: flags (a bad one exits with status 2 naming it), the workers, one line per worker
 * saying where it listens, and a clean stop on SIGTERM / SIGINT (a second signal stops at once).
 */
async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseCli(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    console.error(error.message);
    process.exit(2);
  }
  if (parsed.help) {
    process.stdout.write(usage());
    return;
  }
  let mocker;
  try {
    mocker = await startMocker(parsed.options);
  } catch (error) {
    console.error(`mocker: ${(error as Error).message}`);
    process.exit(1);
  }
  for (const worker of mocker.workers) {
    const events = worker.zmqPort === undefined ? "" : `, KV events on tcp://*:${worker.zmqPort}`;
    console.log(`mocker: worker ${worker.name} (id ${worker.id}) serving ${worker.url}${events}`);
  }
  let signals = 0;
  const stop = () => {
    if (++signals > 1) process.exit(1);
    void mocker.close().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(`mocker: stop failed: ${(error as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

await main();
