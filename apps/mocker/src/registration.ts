import { rename, writeFile } from "node:fs/promises";
import { NatsWorkerRegistrar, workerToSpec, type WorkerInfo } from "@dynamo/discovery";
import { connect, type NatsConnection } from "@nats-io/transport-node";

/** Where the workers of a mocker announce themselves. */
export interface RegistrationOptions {
  /** A static discovery file (JSON, which the YAML parser reads) listing every worker of this process. */
  readonly file?: string;
  /** NATS servers: each worker registers in the `dynamo-instances` bucket with its model card. */
  readonly natsServers?: readonly string[];
  readonly log: (message: string) => void;
}

/** Registrations in force; `close` removes them (the file is left as it is: its watchers keep the last list). */
export interface Registration {
  close(): Promise<void>;
}

/** Writes the file atomically (a temporary file renamed over it), so watchers never read half of it. */
async function writeStaticFile(file: string, workers: readonly WorkerInfo[]): Promise<void> {
  const document = { workers: workers.map(workerToSpec) };
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(document, null, 2)}\n`);
  await rename(temporary, file);
}

/** Registers the workers in discovery: a static file, NATS, both or neither. */
export async function register(workers: readonly WorkerInfo[], options: RegistrationOptions): Promise<Registration> {
  if (options.file !== undefined) await writeStaticFile(options.file, workers);
  let connection: NatsConnection | undefined;
  const registrars: NatsWorkerRegistrar[] = [];
  if (options.natsServers !== undefined && options.natsServers.length > 0) {
    connection = await connect({ servers: [...options.natsServers], maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    try {
      for (const worker of workers) {
        const registrar = new NatsWorkerRegistrar({
          connection,
          worker,
          onProblem: (problem) => options.log(`mocker ${worker.name}: discovery: ${problem.message}`),
        });
        await registrar.register();
        registrars.push(registrar);
      }
    } catch (error) {
      await Promise.all(registrars.map((registrar) => registrar.deregister()));
      await connection.close();
      throw error;
    }
  }
  return {
    async close() {
      await Promise.all(registrars.map((registrar) => registrar.deregister()));
      await connection?.close();
    },
  };
}
