import { WorkerRegistryBase, type WorkerRegistry } from "@dynamo/discovery";

/**
 * One worker list from several registries (a decode pool and a prefill pool): the union of their
 * lists, ready while every part is. A part that loses readiness makes the union unready; its last list
 * stays in force, as in each part.
 */
export class PoolRegistry extends WorkerRegistryBase {
  private unsubscribe: Array<() => void> = [];

  constructor(private readonly parts: readonly WorkerRegistry[]) {
    super();
  }

  async start(): Promise<void> {
    for (const part of this.parts) {
      this.unsubscribe.push(
        part.on("change", () => this.sync()),
        part.on("ready", () => this.sync()),
        part.on("unready", () => this.markNotReady()),
        part.on("problem", (problem) => this.reportProblem(problem)),
      );
    }
    await Promise.all(this.parts.map((part) => part.start()));
    this.sync();
  }

  protected async stopBackend(): Promise<void> {
    for (const off of this.unsubscribe.splice(0)) off();
    await Promise.all(this.parts.map((part) => part.stop()));
  }

  private sync(): void {
    const workers = this.parts.flatMap((part) => part.list());
    if (this.parts.every((part) => part.ready)) this.applyFullList(workers, "pools");
    else this.reconcile(workers, "pools");
  }
}
