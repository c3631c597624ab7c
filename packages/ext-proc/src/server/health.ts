import type { Server } from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { EXT_PROC_SERVICE_NAME } from "../wire/proto.js";

/** Health-check service names served (`grpc.health.v1`). */
export const HEALTH_SERVICE_NAMES = {
  /** Overall status (empty name): follows readiness. */
  overall: "",
  /** Dynamo's probe name (`grpc: {port: 9003, service: inference-extension}`): follows readiness. */
  inferenceExtension: "inference-extension",
  liveness: "liveness",
  readiness: "readiness",
  /** GAIE 004 / Envoy's health check of the ext_proc cluster: follows readiness. */
  extProc: EXT_PROC_SERVICE_NAME,
} as const;

const READINESS_NAMES = [
  HEALTH_SERVICE_NAMES.overall,
  HEALTH_SERVICE_NAMES.inferenceExtension,
  HEALTH_SERVICE_NAMES.readiness,
  HEALTH_SERVICE_NAMES.extProc,
];

/**
 * The process's health as `grpc.health.v1` reports it (Check and Watch). Everything starts
 * NOT_SERVING; liveness and readiness are set independently.
 */
export class HealthStatus {
  private readonly implementation: HealthImplementation;
  private isLive = false;
  private isReady = false;

  constructor() {
    this.implementation = new HealthImplementation(
      Object.fromEntries(Object.values(HEALTH_SERVICE_NAMES).map((name) => [name, "NOT_SERVING" as const])),
    );
  }

  get live(): boolean {
    return this.isLive;
  }

  get ready(): boolean {
    return this.isReady;
  }

  setLive(live: boolean): void {
    if (live === this.isLive) return;
    this.isLive = live;
    this.implementation.setStatus(HEALTH_SERVICE_NAMES.liveness, live ? "SERVING" : "NOT_SERVING");
  }

  setReady(ready: boolean): void {
    if (ready === this.isReady) return;
    this.isReady = ready;
    for (const name of READINESS_NAMES) this.implementation.setStatus(name, ready ? "SERVING" : "NOT_SERVING");
  }

  /** Registers `grpc.health.v1.Health` on a server (may be called for several servers). */
  addTo(server: Server): void {
    this.implementation.addToServer(server);
  }
}
