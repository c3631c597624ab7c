// Validation against a CustomResourceDefinition's own schema, offline, as the API server applies it:
// defaults first, then the structural OpenAPI schema (unknown fields rejected unless the schema preserves
// them), then every x-kubernetes-validations CEL rule on the defaulted object.
import { evaluate } from "@marcbachmann/cel-js";
import { Ajv, type ValidateFunction } from "ajv";
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";

type Schema = Record<string, unknown> & {
  type?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: Schema | boolean;
  "x-kubernetes-validations"?: { rule: string; message?: string }[];
  "x-kubernetes-preserve-unknown-fields"?: boolean;
};

interface CrdDocument {
  kind: string;
  spec: {
    group: string;
    names: { kind: string };
    versions: { name: string; served: boolean; schema: { openAPIV3Schema: Schema } }[];
  };
}

/** A validator for one served version of a CRD. */
export interface CrdValidator {
  apiVersion: string;
  kind: string;
  /** Problems with `object` (empty when valid); `object` itself is not modified. */
  validate(object: unknown): string[];
}

const ANNOTATION_KEYWORDS = [
  "x-kubernetes-validations",
  "x-kubernetes-preserve-unknown-fields",
  "x-kubernetes-int-or-string",
  "x-kubernetes-list-type",
  "x-kubernetes-list-map-keys",
  "x-kubernetes-map-type",
  "x-kubernetes-embedded-resource",
];

function newAjv(): Ajv {
  const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
  for (const keyword of ANNOTATION_KEYWORDS) ajv.addKeyword({ keyword });
  ajv.addFormat("int32", { type: "number", validate: (n) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
  ajv.addFormat("int64", { type: "number", validate: (n) => Number.isSafeInteger(n) });
  ajv.addFormat("date-time", (text) => !Number.isNaN(Date.parse(text)));
  return ajv;
}

/** The API server prunes (and strict field validation rejects) fields a structural schema does not declare. */
function closeObjects(schema: Schema): Schema {
  const copy: Schema = { ...schema };
  if (copy.properties) {
    copy.properties = Object.fromEntries(Object.entries(copy.properties).map(([k, v]) => [k, closeObjects(v)]));
    if (copy.additionalProperties === undefined && !copy["x-kubernetes-preserve-unknown-fields"]) {
      copy.additionalProperties = false;
    }
  }
  if (copy.items) copy.items = closeObjects(copy.items);
  if (typeof copy.additionalProperties === "object")
    copy.additionalProperties = closeObjects(copy.additionalProperties);
  return copy;
}

/** JSON values as CEL sees them: schema integers are CEL ints (bigint in the evaluator). */
function celValue(schema: Schema | undefined, value: unknown): unknown {
  if (schema?.type === "integer" && typeof value === "number") return BigInt(value);
  if (Array.isArray(value)) return value.map((item) => celValue(schema?.items, item));
  if (value !== null && typeof value === "object") {
    const additional = typeof schema?.additionalProperties === "object" ? schema.additionalProperties : undefined;
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, celValue(schema?.properties?.[key] ?? additional, item)]),
    );
  }
  return value;
}

function celProblems(schema: Schema, value: unknown, path: string): string[] {
  if (value === undefined || value === null) return [];
  const problems: string[] = [];
  for (const { rule, message } of schema["x-kubernetes-validations"] ?? []) {
    let result: unknown;
    try {
      result = evaluate(rule, { self: celValue(schema, value) });
    } catch (error) {
      problems.push(`${path || "/"}: rule \`${rule}\` could not be evaluated: ${(error as Error).message}`);
      continue;
    }
    if (result !== true) problems.push(`${path || "/"}: ${message ?? `rule \`${rule}\` failed`}`);
  }
  if (Array.isArray(value) && schema.items) {
    value.forEach((item, index) => problems.push(...celProblems(schema.items!, item, `${path}/${index}`)));
  } else if (typeof value === "object") {
    for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
      const child =
        schema.properties?.[key] ??
        (typeof schema.additionalProperties === "object" ? schema.additionalProperties : undefined);
      if (child) problems.push(...celProblems(child, item, `${path}/${key}`));
    }
  }
  return problems;
}

function validatorFor(apiVersion: string, kind: string, schema: Schema, compiled: ValidateFunction): CrdValidator {
  return {
    apiVersion,
    kind,
    validate(object) {
      const copy = structuredClone(object);
      if (!compiled(copy)) {
        return (compiled.errors ?? []).map((error) => {
          const extra =
            error.keyword === "additionalProperties"
              ? ` (${(error.params as { additionalProperty: string }).additionalProperty})`
              : "";
          return `${error.instancePath || "/"}: ${error.message ?? error.keyword}${extra}`;
        });
      }
      return celProblems(schema, copy, "");
    },
  };
}

/** Validators for every served version of the CRD(s) in a YAML file. */
export function loadCrdValidators(file: string): CrdValidator[] {
  const ajv = newAjv();
  const documents = readFileSync(file, "utf8")
    .split(/^---$/m)
    .map((text) => parseYaml(text) as CrdDocument | null)
    .filter((document): document is CrdDocument => document?.kind === "CustomResourceDefinition");
  return documents.flatMap((crd) =>
    crd.spec.versions
      .filter((version) => version.served)
      .map((version) => {
        const schema = version.schema.openAPIV3Schema;
        const apiVersion = `${crd.spec.group}/${version.name}`;
        return validatorFor(apiVersion, crd.spec.names.kind, schema, ajv.compile(closeObjects(schema)));
      }),
  );
}
