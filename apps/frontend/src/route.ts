import { invalidEppMetadata, workerNotServed } from "./errors.js";
import type { FrontedWorker, RequestError, Route, RoutingFields } from "./types.js";

/** Routing metadata of a request besides its `nvext` fields: the two headers this project reads. */
export interface RouteMetadata {
  /** `x-dynamo-routing-mode` as received. */
  readonly routingMode: string | undefined;
  /** `x-prefiller-host-port` as received (repeated headers joined by ", "). */
  readonly prefillerHostPort: string | undefined;
}

const HOST_PORT = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?):(\d{1,5})$/;

/** Whether `text` is one `host:port` (hostname, IPv4 or bracketed IPv6; port 1–65535). */
export function isHostPort(text: string): boolean {
  const match = HOST_PORT.exec(text);
  if (match === null) return false;
  const port = Number(match[1]);
  return port >= 1 && port <= 65535;
}

/**
 * Decides where a request runs (reference §4, §5 project rule, §7.7), without re-deciding anything:
 * - decode worker = `decode_worker_id`, else `backend_instance_id`; it must be one this sidecar fronts
 *   (its own engine, DP rank below the DP size), else 503 naming the id; neither set → the local engine;
 * - disaggregated when `x-dynamo-routing-mode: disaggregated` or an `x-prefiller-host-port` is present:
 *   the address must be one `host:port`, and a `disaggregated` marker needs the prefill worker id;
 * - `aggregated` (or no marker, no prefill id, no address) → decode only, even when prefill workers exist;
 * - anything malformed or contradictory → 502 `invalid_epp_metadata`.
 */
export function resolveRoute(fields: RoutingFields, meta: RouteMetadata, fronted: FrontedWorker): Route | RequestError {
  const mode = meta.routingMode?.trim().toLowerCase();
  if (mode !== undefined && mode !== "aggregated" && mode !== "disaggregated")
    return invalidEppMetadata(
      `x-dynamo-routing-mode "${meta.routingMode}" is neither "aggregated" nor "disaggregated"`,
    );
  const hostPort = meta.prefillerHostPort?.trim();
  if (hostPort !== undefined) {
    if (hostPort === "") return invalidEppMetadata("x-prefiller-host-port is empty; expected one <host>:<port>");
    if (hostPort.includes(","))
      return invalidEppMetadata(
        `x-prefiller-host-port "${hostPort}" names several addresses (repeated or comma-separated); expected one <host>:<port>`,
      );
    if (!isHostPort(hostPort)) return invalidEppMetadata(`x-prefiller-host-port "${hostPort}" is not a <host>:<port>`);
  }

  const workerId = fields.decodeWorkerId ?? fields.backendInstanceId;
  const dpRank = fields.dpRank ?? 0;
  if (workerId !== undefined && workerId !== fronted.workerId)
    return workerNotServed(
      `worker ${workerId} is not served by this frontend (it fronts worker ${fronted.workerId}); the endpoint picker's view is stale or the request reached the wrong pod`,
    );
  if (dpRank >= fronted.dataParallelSize)
    return workerNotServed(
      `worker ${workerId ?? fronted.workerId} DP rank ${dpRank} is not served by this frontend (it fronts DP ranks 0..${fronted.dataParallelSize - 1})`,
    );
  const decode = { workerId, dpRank };

  if (mode === "aggregated") {
    if (hostPort !== undefined || fields.prefillWorkerId !== undefined)
      return invalidEppMetadata(
        "x-dynamo-routing-mode is aggregated but a prefill worker is named (x-dynamo-prefill-instance-id or x-prefiller-host-port)",
      );
    return { decode };
  }
  if (mode === "disaggregated") {
    if (fields.prefillWorkerId === undefined)
      return invalidEppMetadata(
        "x-dynamo-routing-mode is disaggregated but no prefill worker id is set (x-dynamo-prefill-instance-id)",
      );
    if (hostPort === undefined)
      return invalidEppMetadata(
        "x-dynamo-routing-mode is disaggregated but the prefill worker's address is missing (x-prefiller-host-port)",
      );
  }
  if (hostPort === undefined) {
    if (fields.prefillWorkerId !== undefined)
      return invalidEppMetadata(
        `prefill worker ${fields.prefillWorkerId} is named but its address is missing (x-prefiller-host-port)`,
      );
    return { decode };
  }
  return { decode, prefill: { workerId: fields.prefillWorkerId, dpRank: fields.prefillDpRank, hostPort } };
}

/** Whether a `resolveRoute` result is a refusal. */
export function isRequestError(value: Route | RequestError): value is RequestError {
  return "status" in value;
}
