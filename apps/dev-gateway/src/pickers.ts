import { Client, credentials, makeClientConstructor, type ChannelCredentials, type ServiceError } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { ExtProcClient, type ExtProcClientOptions } from "@dynamo/ext-proc";

/** How the gateway checks its endpoint pickers when it has several (Envoy's active health check of the cluster). */
export interface PickerHealthCheckOptions {
  /** Time between checks of each picker (default 1000 ms). */
  intervalMs?: number;
  /** Deadline of one check (default 1000 ms). */
  timeoutMs?: number;
  /** The pickers' plaintext health port (the EPP's 9003); absent: their ext_proc port, with its TLS. */
  port?: number;
  /** `grpc.health.v1` service asked for (default `inference-extension`, the EPP's readiness). */
  service?: string;
}

/** The health service the gateway asks by default: the EPP's readiness. */
export const PICKER_HEALTH_SERVICE = "inference-extension";

/** One endpoint picker of the pool. */
export interface Picker {
  /** `host:port` of its ext_proc server. */
  readonly target: string;
  readonly client: ExtProcClient;
  /** Its last health check answered SERVING and no ext_proc stream to it has failed since. */
  readonly healthy: boolean;
}

type HealthClient = Client & {
  check(
    request: { service: string },
    options: { deadline: number },
    callback: (error: ServiceError | null, response?: { status: string }) => void,
  ): void;
};

/** Reconnect quickly to a picker that went away (a restarted replica comes back on the same address). */
const RECONNECT_OPTIONS = { "grpc.initial_reconnect_backoff_ms": 250, "grpc.max_reconnect_backoff_ms": 2000 };

class CheckedPicker implements Picker {
  readonly client: ExtProcClient;
  healthy = true;
  private readonly health: HealthClient | undefined;
  private timer: NodeJS.Timeout | undefined;
  private checking = false;

  constructor(
    readonly target: string,
    options: ExtProcClientOptions,
    check: PickerHealthCheckOptions | undefined,
    private readonly log: ((line: string) => void) | undefined,
  ) {
    this.client = new ExtProcClient({
      ...options,
      target,
      ...(check !== undefined && { channelOptions: { ...RECONNECT_OPTIONS, ...options.channelOptions } }),
    });
    if (check === undefined) return;
    const host = target.slice(0, target.lastIndexOf(":"));
    const tls = check.port === undefined ? (options.tls ?? false) : false;
    const Health = makeClientConstructor(healthService as never, "Health");
    this.health = new Health(check.port === undefined ? target : `${host}:${check.port}`, healthCredentials(tls), {
      ...RECONNECT_OPTIONS,
      ...(tls !== false && { "grpc.ssl_target_name_override": "localhost" }),
    }) as unknown as HealthClient;
    const service = check.service ?? PICKER_HEALTH_SERVICE;
    const timeoutMs = check.timeoutMs ?? 1000;
    this.timer = setInterval(() => this.check(service, timeoutMs), check.intervalMs ?? 1000);
    this.timer.unref();
    this.check(service, timeoutMs);
  }

  /** An ext_proc stream to this picker failed before it answered: no new requests until a check passes. */
  failed(reason: string): void {
    this.mark(false, reason);
  }

  close(): void {
    clearInterval(this.timer);
    this.health?.close();
    this.client.close();
  }

  private check(service: string, timeoutMs: number): void {
    if (this.checking || this.health === undefined) return;
    this.checking = true;
    this.health.check({ service }, { deadline: Date.now() + timeoutMs }, (error, response) => {
      this.checking = false;
      if (error) this.mark(false, `health check failed: ${error.details || error.message}`);
      else this.mark(response?.status === "SERVING", `health ${response?.status ?? "unknown"}`);
    });
  }

  private mark(healthy: boolean, reason: string): void {
    if (healthy === this.healthy) return;
    this.healthy = healthy;
    this.log?.(`endpoint picker ${this.target} ${healthy ? "healthy" : "unhealthy"} (${reason})`);
  }
}

function healthCredentials(tls: NonNullable<ExtProcClientOptions["tls"]>): ChannelCredentials {
  if (tls === false) return credentials.createInsecure();
  if (tls === true) return credentials.createSsl(null, null, null, { rejectUnauthorized: false });
  return credentials.createSsl(Buffer.from(tls.ca));
}

/**
 * The gateway's endpoint pickers, as Envoy load-balances an ext_proc cluster: requests go round-robin over the
 * healthy ones; a picker whose health check answers NOT_SERVING (or fails), or whose ext_proc stream failed before
 * it answered, gets no new requests until a check passes. With every picker unhealthy, all of them are tried
 * (Envoy's panic routing). A single picker is never checked: it gets every request, as before.
 */
export class PickerPool {
  private readonly members: CheckedPicker[];
  private next = 0;

  constructor(options: ExtProcClientOptions, check: PickerHealthCheckOptions, log?: (line: string) => void) {
    const targets = parseTargets(options.target);
    const checked = targets.length > 1 ? check : undefined;
    this.members = targets.map((target) => new CheckedPicker(target, options, checked, log));
  }

  get pickers(): readonly Picker[] {
    return this.members;
  }

  /** The next picker for a new request, skipping `exclude` (the one that just failed) when another is left. */
  choose(exclude?: Picker): Picker | undefined {
    const candidates = this.members.filter((p) => p !== exclude);
    if (candidates.length === 0) return undefined;
    const healthy = candidates.filter((p) => p.healthy);
    const pool = healthy.length > 0 ? healthy : candidates;
    return pool[this.next++ % pool.length];
  }

  /** Takes `picker` out of rotation until its next passing health check. */
  failed(picker: Picker, reason: string): void {
    if (this.members.length > 1) (picker as CheckedPicker).failed(reason);
  }

  close(): void {
    for (const member of this.members) member.close();
  }
}

/** The `host:port` entries of a comma-separated list; throws on an empty one. */
export function parseTargets(list: string): string[] {
  const targets = list.split(",").map((t) => t.trim());
  if (targets.some((t) => t === "")) throw new Error(`endpoint picker list "${list}" has an empty entry`);
  return targets;
}
