import type { RequestLifecycle, RequestRouter, RouteDecision, RouteRequest } from "../types.js";
import { reject } from "../stream/rejection.js";

export interface RoundRobinRouterOptions {
  /** The pool (`ip:port` each), or a function returning the current pool. */
  endpoints: readonly string[] | (() => readonly string[]);
  /** Token ids to inject as `nvext.token_data` for a body request; absent or undefined: body unchanged. */
  tokenData?: (request: RouteRequest) => readonly number[] | Uint32Array | undefined;
  /** Routing headers for a body request sent to `endpoint`. */
  headers?: (endpoint: string, request: RouteRequest) => Readonly<Record<string, string>>;
  /** Response-path callbacks for a body request sent to `endpoint`. */
  lifecycle?: (endpoint: string, request: RouteRequest) => RequestLifecycle | undefined;
}

/**
 * The simplest `RequestRouter`: strict rotation over the pool, restricted to the request's subset
 * (503 when nothing is eligible). The default of GAIE's conformance picker, and a reference for
 * implementing the interface.
 */
export class RoundRobinRouter implements RequestRouter {
  private next = 0;

  constructor(private readonly options: RoundRobinRouterOptions) {}

  route(request: RouteRequest, _signal?: AbortSignal): RouteDecision {
    const pool = typeof this.options.endpoints === "function" ? this.options.endpoints() : this.options.endpoints;
    const eligible = request.subset ? pool.filter((endpoint) => request.subset!.allows(endpoint)) : pool;
    if (eligible.length === 0) return reject("no_endpoints", "no endpoints available");
    const endpoint = eligible[this.next++ % eligible.length]!;
    if (request.body === undefined) return { type: "route", endpoints: [endpoint] };
    const tokenData = this.options.tokenData?.(request);
    const headers = this.options.headers?.(endpoint, request);
    const lifecycle = this.options.lifecycle?.(endpoint, request);
    return {
      type: "route",
      endpoints: [endpoint],
      ...(headers !== undefined ? { headers } : {}),
      ...(tokenData !== undefined ? { body: { tokenData } } : {}),
      ...(lifecycle !== undefined ? { lifecycle } : {}),
    };
  }
}
