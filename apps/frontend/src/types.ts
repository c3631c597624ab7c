/** The routing fields of one request: the body's `nvext` overridden by the endpoint picker's headers. */
export interface RoutingFields {
  backendInstanceId?: bigint;
  decodeWorkerId?: bigint;
  prefillWorkerId?: bigint;
  dpRank?: number;
  prefillDpRank?: number;
  /** `agent_hints.priority` (i32). */
  priority?: number;
  /** `agent_hints.strict_priority` (u32). */
  strictPriority?: number;
  cacheSalt?: string;
  trustedTenantId?: string;
}

/** The workers this sidecar fronts: one engine, with `dataParallelSize` DP ranks on consecutive ports. */
export interface FrontedWorker {
  readonly workerId: bigint;
  readonly dataParallelSize: number;
}

/** Where a request goes: decode on the local engine, after prefill on the named prefill worker when disaggregated. */
export interface Route {
  readonly decode: { readonly workerId: bigint | undefined; readonly dpRank: number };
  readonly prefill?: {
    readonly workerId: bigint | undefined;
    readonly dpRank: number | undefined;
    /** `host:port` of the prefill pod's `http` endpoint. */
    readonly hostPort: string;
  };
}

/** A request this sidecar refuses, as an OpenAI-style error. */
export interface RequestError {
  readonly status: number;
  readonly type: string;
  readonly code: string;
  readonly message: string;
}

/** An OpenAI request kind this sidecar serves. */
export type RequestKind = "chat" | "completions";
