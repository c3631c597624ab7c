import { KvCostPicker, LeastLoadedPicker, PowerOfTwoPicker, RandomPicker, RoundRobinPicker } from "./pickers.js";
import type { Picker } from "./types.js";

/**
 * Pickers by name, so that routers, baselines and benchmarks choose a policy by configuration
 * (`DYN_ROUTER_MODE`) and new policies plug in without touching the pool: `registerPicker("mine", () =>
 * new MyPicker())`. A picker may keep state (a round-robin cursor), so each pool gets its own instance.
 */
const pickers = new Map<string, () => Picker>([
  ["kv", () => new KvCostPicker()],
  ["round-robin", () => new RoundRobinPicker()],
  ["random", () => new RandomPicker()],
  ["least-loaded", () => new LeastLoadedPicker()],
  ["power-of-two", () => new PowerOfTwoPicker()],
]);

/** Registers (or replaces) the factory of a picker name. */
export function registerPicker(name: string, factory: () => Picker): void {
  pickers.set(name, factory);
}

/** A new instance of the named picker; throws `RangeError` listing the known names for an unknown one. */
export function createPicker(name: string): Picker {
  const factory = pickers.get(name);
  if (!factory) throw new RangeError(`unknown picker ${JSON.stringify(name)}; known: ${pickerNames().join(", ")}`);
  return factory();
}

/** Registered picker names. */
export function pickerNames(): string[] {
  return [...pickers.keys()];
}
