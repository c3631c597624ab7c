import { registerPicker } from "../registry.js";
import type { EndpointSignals } from "../types.js";
import { DynamoClassicPicker } from "./dynamo-classic.js";
import { gaieDefaultPicker, type ApproxPrefixProducer } from "./gaie.js";
import { llmdPrecisePicker } from "./llmd.js";

export interface BaselineContext {
  /** Scraped endpoint metrics. */
  readonly signals: EndpointSignals;
  /** GAIE's approximate prefix producer, primed with each request before routing. */
  readonly producer: ApproxPrefixProducer;
  /** The router's KV block size in tokens. */
  readonly blockSize: number;
}

/** Names of the baseline pickers `registerBaselinePickers` adds. */
export const BASELINE_PICKERS = ["gaie-default", "llm-d-precise", "dynamo-classic"] as const;

/**
 * Registers the scored baselines by name (`gaie-default`, `llm-d-precise`, `dynamo-classic`) over one
 * context, so a router built with `picker: "<name>"` runs them; registering again replaces them.
 */
export function registerBaselinePickers(ctx: BaselineContext): void {
  registerPicker("gaie-default", () => gaieDefaultPicker(ctx.signals, ctx.producer));
  registerPicker("llm-d-precise", () => llmdPrecisePicker(ctx.signals, ctx.blockSize));
  registerPicker("dynamo-classic", () => new DynamoClassicPicker(ctx.blockSize));
}
