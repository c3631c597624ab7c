import { FrontendConfigError, USAGE, frontendConfig, wantsHelp } from "./config.js";
import { Frontend } from "./server.js";

/** Requests in flight get this long to finish after SIGTERM before they are cut. */
const DRAIN_MS = 30_000;

/**
 * The sidecar process: flags and `DYN_*` variables (a bad value exits with status 2 naming it), the
 * server, and a graceful stop on SIGTERM / SIGINT (a second signal exits at once).
 */
async function main(argv: string[]): Promise<void> {
  if (wantsHelp(argv)) {
    console.log(USAGE);
    return;
  }
  let config;
  try {
    config = frontendConfig(argv);
  } catch (error) {
    if (!(error instanceof FrontendConfigError)) throw error;
    console.error(`${error.message}\n\n${USAGE}`);
    process.exit(2);
  }
  const frontend = await Frontend.start(config);
  process.on("unhandledRejection", (reason) => frontend.log.error({ err: reason }, "unhandled rejection"));
  let signals = 0;
  const stop = (signal: string) => {
    if (++signals > 1) process.exit(1);
    frontend.log.info({ signal, inflight: frontend.inflight }, "stopping");
    void frontend.close(DRAIN_MS).then(
      () => process.exit(0),
      (error: unknown) => {
        frontend.log.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

main(process.argv.slice(2)).catch((error: unknown) => {
  console.error(`frontend failed to start: ${(error as Error).stack ?? String(error)}`);
  process.exit(1);
});
