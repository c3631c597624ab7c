/**
 * Numbers written the way Python writes them: `repr(float)` / `str(float)` and `json.dumps`, which the
 * engine's chat templates use (`tojson` is `json.dumps`).
 */

/** Python's `repr` of a float: shortest round-trip digits, `.0` on whole numbers, exponent outside [1e-4, 1e16). */
export function pythonFloatRepr(value: number, forJson: boolean): string {
  if (Number.isNaN(value)) return forJson ? "NaN" : "nan";
  if (!Number.isFinite(value)) {
    if (forJson) return value > 0 ? "Infinity" : "-Infinity";
    return value > 0 ? "inf" : "-inf";
  }
  if (value === 0) return Object.is(value, -0) ? "-0.0" : "0.0";
  const [mantissa, exponentText] = value.toExponential().split("e") as [string, string];
  const sign = mantissa.startsWith("-") ? "-" : "";
  const digits = mantissa.replace("-", "").replace(".", "");
  const exponent = Number(exponentText);
  if (exponent < -4 || exponent >= 16) {
    const fraction = digits.length > 1 ? `.${digits.slice(1)}` : "";
    const magnitude = String(Math.abs(exponent)).padStart(2, "0");
    return `${sign}${digits[0]}${fraction}e${exponent < 0 ? "-" : "+"}${magnitude}`;
  }
  if (exponent < 0) return `${sign}0.${"0".repeat(-exponent - 1)}${digits}`;
  const whole = digits.slice(0, exponent + 1).padEnd(exponent + 1, "0");
  return `${sign}${whole}.${digits.slice(exponent + 1) || "0"}`;
}

/** Python's `str(int)` of an integral double: every digit, never an exponent. */
export function pythonIntText(value: number): string {
  return Number.isSafeInteger(value) ? String(value === 0 ? 0 : value) : BigInt(value).toString();
}
