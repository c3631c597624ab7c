import type { KvRouterOptions } from "@dynamo/kv-router";

/**
 * The routing policies the simulator compares. Every policy but the pooled bound routes through the
 * same `RouterService` the endpoint picker runs; they differ in the picker (by name, from the
 * scheduling registry), whether the router hears KV events, and which extra signals the picker reads.
 */
export interface PolicySpec {
  readonly name: string;
  /** One line for the docs. */
  readonly description: string;
  /** Router settings besides block size, clock and randomness (the picker by registry name). */
  readonly router: Omit<KvRouterOptions, "blockSize" | "now" | "rng" | "picker"> & { readonly picker: string };
  /** Engines' KV events reach the router (after the configured delay). */
  readonly events: boolean;
  /** The picker reads scraped engine metrics (waiting queue, KV usage), refreshed every scrape interval. */
  readonly scraped: boolean;
  /** GAIE's approximate prefix producer is primed with each request's characters before routing. */
  readonly charPrefix: boolean;
  /** One engine with N× the cache and N× the compute instead of N engines and a router. */
  readonly pooled?: boolean;
}

const plain = (name: string, picker: string, description: string): PolicySpec => ({
  name,
  description,
  router: { picker, useKvEvents: false },
  events: false,
  scraped: false,
  charPrefix: false,
});

export const POLICIES: readonly PolicySpec[] = [
  {
    name: "ours",
    description: "this router: Dynamo's cost (prefill after overlap credit + decode blocks), index fed by KV events",
    router: { picker: "kv", useKvEvents: true },
    events: true,
    scraped: false,
    charPrefix: false,
  },
  {
    name: "ours-approx",
    description: "this router without KV events: the index learns each routed prompt (TTL 120 s)",
    router: { picker: "kv", useKvEvents: false },
    events: false,
    scraped: false,
    charPrefix: false,
  },
  plain("round-robin", "round-robin", "strict rotation (a Kubernetes Service)"),
  plain("random", "random", "uniform choice"),
  plain("least-loaded", "least-loaded", "fewest in-flight requests (router bookkeeping), then fewest active blocks"),
  {
    name: "gaie-default",
    description:
      "GAIE's default profile: queue 2 + KV utilisation 2 (scraped every 50 ms) + approximate character prefix 3",
    router: { picker: "gaie-default", useKvEvents: false },
    events: false,
    scraped: true,
    charPrefix: true,
  },
  {
    name: "llm-d-precise",
    description: "llm-d: precise prefix (KV events) 2 + load-aware 1 (scraped waiting queue)",
    router: { picker: "llm-d-precise", useKvEvents: true },
    events: true,
    scraped: true,
    charPrefix: false,
  },
  {
    name: "dynamo-classic",
    description: "Dynamo's 2025 cost form (overlap weight 1), ties to registration order, KV events",
    router: { picker: "dynamo-classic", useKvEvents: true },
    events: true,
    scraped: false,
    charPrefix: false,
  },
  {
    name: "pooled",
    description: "upper bound: one engine with N× the KV cache and N× the compute, no routing",
    router: { picker: "round-robin", useKvEvents: false },
    events: false,
    scraped: false,
    charPrefix: false,
    pooled: true,
  },
];

/**
 * Variants run only when named in `--policies`: this router with a larger overlap credit (each cached
 * block worth two uncached ones), to measure how much reuse its default trade-off leaves.
 */
export const EXTRA_POLICIES: readonly PolicySpec[] = [
  {
    name: "ours-credit-2",
    description: "this router with overlap credit 2 (not the default): affinity weighs twice as much",
    router: { picker: "kv", useKvEvents: true, overlapScoreCredit: 2 },
    events: true,
    scraped: false,
    charPrefix: false,
  },
];

/** The policy named `name`; throws listing the known names otherwise. */
export function policyByName(name: string): PolicySpec {
  const all = [...POLICIES, ...EXTRA_POLICIES];
  const p = all.find((q) => q.name === name);
  if (!p) throw new Error(`unknown policy ${JSON.stringify(name)}; known: ${all.map((q) => q.name).join(", ")}`);
  return p;
}
