import { z } from "zod";

/**
 * Configuration as a table of settings, each read from environment variables or given in an options
 * object and validated by the same zod schema either way. The router's table is in `config.ts`; servers
 * that compose the router declare their own tables with `setting()` and read them with the functions here.
 */

export type SettingKind = "number" | "int" | "bool" | "enum" | "string";

export interface Setting<K extends string = string> {
  readonly key: K;
  /** Canonical variable first; later names are read only when every earlier one is unset. */
  readonly env: readonly string[];
  readonly kind: SettingKind;
  readonly schema: z.ZodType;
  /** Accepted range in words, for error messages. */
  readonly accepted: string;
}

export type Environment = Readonly<Record<string, string | undefined>>;

/** A configuration value outside its accepted range, or a combination that cannot run. */
export class RouterConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid router configuration:\n  ${problems.join("\n  ")}`);
    this.name = "RouterConfigError";
  }
}

export function setting<K extends string>(
  key: K,
  env: string | readonly string[],
  kind: SettingKind,
  schema: z.ZodType,
  accepted: string,
): Setting<K> {
  return { key, env: typeof env === "string" ? [env] : env, kind, schema, accepted };
}

const finite = z.number().refine(Number.isFinite);

/** Schemas shared by setting tables. */
export const schemas = {
  finite,
  nonNegative: () => finite.refine((v) => v >= 0),
  positive: () => finite.refine((v) => v > 0),
  intAtLeast: (min: number) =>
    z
      .number()
      .int()
      .refine((v) => v >= min),
  fraction: () => finite.refine((v) => v >= 0 && v <= 1),
  oneOf: <T extends string>(values: readonly [T, ...T[]]) => z.enum(values),
  bool: () => z.boolean(),
  string: () => z.string(),
};

/** Accepted ranges in words, shared by setting tables. */
export const ACCEPTED = {
  nonNegative: "a finite number ≥ 0",
  positive: "a finite number > 0",
  bool: "true or false (also 1/0, yes/no, on/off)",
} as const;

const TRUE = new Set(["true", "1", "yes", "on"]);
const FALSE = new Set(["false", "0", "no", "off"]);

function parseRaw(kind: SettingKind, raw: string): unknown {
  switch (kind) {
    case "bool": {
      const v = raw.toLowerCase();
      return TRUE.has(v) ? true : FALSE.has(v) ? false : raw;
    }
    case "number":
    case "int":
      return /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(raw) ? Number(raw) : raw;
    case "enum":
      return raw.toLowerCase();
    case "string":
      return raw;
  }
}

/** The first set variable among a setting's names (empty or whitespace-only values count as unset). */
function readEnv(env: Environment, names: readonly string[]): { name: string; value: string } | undefined {
  for (const name of names) {
    const value = env[name]?.trim();
    if (value) return { name, value };
  }
  return undefined;
}

/**
 * Reads every setting of `table` present in `env`. Canonical names win over aliases; a bad value is
 * reported as `VARIABLE: expected <range>, got "<value>"`. Throws `RouterConfigError` listing all problems.
 */
export function readSettings<K extends string>(
  table: readonly Setting<K>[],
  env: Environment,
): Partial<Record<K, unknown>> {
  const out: Partial<Record<K, unknown>> = {};
  const problems: string[] = [];
  for (const st of table) {
    const found = readEnv(env, st.env);
    if (!found) continue;
    const parsed = st.schema.safeParse(parseRaw(st.kind, found.value));
    if (parsed.success) out[st.key] = parsed.data;
    else problems.push(`${found.name}: expected ${st.accepted}, got ${JSON.stringify(found.value)}`);
  }
  if (problems.length > 0) throw new RouterConfigError(problems);
  return out;
}

/**
 * Validates an options object against `table` (undefined values count as absent, keys outside the table
 * are left out); throws `RouterConfigError` naming each bad key with its variable. Returns the values given.
 */
export function validateSettings<K extends string>(
  table: readonly Setting<K>[],
  options: Partial<Record<K, unknown>>,
): Partial<Record<K, unknown>> {
  const defined: Partial<Record<K, unknown>> = {};
  const problems: string[] = [];
  for (const st of table) {
    const value = options[st.key];
    if (value === undefined) continue;
    defined[st.key] = value;
    if (!st.schema.safeParse(value).success) {
      problems.push(
        `${st.key}${st.env[0] ? ` (${st.env[0]})` : ""}: expected ${st.accepted}, got ${JSON.stringify(value)}`,
      );
    }
  }
  if (problems.length > 0) throw new RouterConfigError(problems);
  return defined;
}
