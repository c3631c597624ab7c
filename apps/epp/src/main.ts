import { EppConfigError, eppConfigFromEnv } from "./config.js";
import { Epp } from "./epp.js";
import { startTracing } from "./tracing.js";

/**
 * The endpoint picker process: configuration from the environment (a bad value exits with status 2
 * naming the variable), tracing when OTLP is configured, the servers, and a graceful stop on SIGTERM /
 * SIGINT (a second signal stops at once).
 */
async function main(): Promise<void> {
  let config;
  try {
    config = eppConfigFromEnv(process.env);
  } catch (error) {
    if (!(error instanceof EppConfigError)) throw error;
    console.error(error.message);
    process.exit(2);
  }
  const stopTracing = await startTracing(process.env);
  const epp = await Epp.start({ config });
  process.on("unhandledRejection", (reason) => epp.log.error({ err: reason }, "unhandled rejection"));
  let signals = 0;
  const stop = (signal: string) => {
    if (++signals > 1) process.exit(1);
    epp.log.info({ signal }, "signal received");
    void epp
      .shutdown()
      .then(() => stopTracing?.())
      .then(
        () => process.exit(0),
        (error: unknown) => {
          epp.log.error({ err: error }, "shutdown failed");
          process.exit(1);
        },
      );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

main().catch((error: unknown) => {
  console.error(`endpoint picker failed to start: ${(error as Error).stack ?? String(error)}`);
  process.exit(1);
});
