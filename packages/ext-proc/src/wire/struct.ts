import type { WireStruct, WireValue } from "./messages.js";

/** A JSON value as carried by `google.protobuf.Value`. */
export type JsonValue = null | number | string | boolean | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** `google.protobuf.Struct` → plain object. */
export function structToJson(struct: WireStruct | undefined): JsonObject {
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(struct?.fields ?? {})) out[key] = valueToJson(value);
  return out;
}

/** `google.protobuf.Value` → plain JSON value (an unset value reads as null). */
export function valueToJson(value: WireValue | undefined): JsonValue {
  if (value === undefined || value === null) return null;
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.numberValue !== undefined) return value.numberValue;
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.structValue !== undefined) return structToJson(value.structValue);
  if (value.listValue !== undefined) return (value.listValue.values ?? []).map(valueToJson);
  return null;
}

/** Plain object → `google.protobuf.Struct`. */
export function jsonToStruct(object: { readonly [key: string]: JsonValue }): WireStruct {
  const fields: Record<string, WireValue> = {};
  for (const [key, value] of Object.entries(object)) fields[key] = jsonToValue(value);
  return { fields };
}

/** Plain JSON value → `google.protobuf.Value`. */
export function jsonToValue(value: JsonValue): WireValue {
  if (value === null) return { nullValue: 0 };
  if (typeof value === "string") return { stringValue: value };
  if (typeof value === "number") return { numberValue: value };
  if (typeof value === "boolean") return { boolValue: value };
  if (Array.isArray(value)) return { listValue: { values: value.map(jsonToValue) } };
  return { structValue: jsonToStruct(value) };
}
