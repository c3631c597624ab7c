import { workerData } from "piscina";
import { LoadedModels, type PoolReply, type PoolTask } from "./pool-protocol.js";

const models = new LoadedModels((workerData as { maxModels: number }).maxModels);

/** Pool worker entry: runs one task against the models this thread has loaded. */
export default function run(task: PoolTask): PoolReply {
  return models.run(task);
}
