import { configFrom, USAGE } from "./config.js";
import { DevGateway } from "./gateway.js";

async function main(): Promise<void> {
  let config;
  try {
    config = configFrom(process.argv.slice(2), process.env);
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (config === "help") {
    console.log(USAGE);
    return;
  }
  const gateway = await DevGateway.start({ ...config, log: (line) => console.log(line) });
  console.log(`dev-gateway listening on ${gateway.url}, endpoint picker at ${config.extProc.target}`);
  const stop = () => {
    void gateway.close().then(() => process.exit(0));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

void main();
