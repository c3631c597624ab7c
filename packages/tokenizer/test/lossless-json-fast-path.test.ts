import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { KEY_ORDER, parseLosslessJson, parseWithParser } from "../src/lossless-json.js";

/** The parse of `text`, or the message it was refused with. */
function outcome(parse: (text: string, field: string) => unknown, text: string): unknown {
  try {
    return { value: parse(text, "body") };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

describe("JSON bodies: the plain-parse fast path agrees with the Python-faithful parser", () => {
  it("on arbitrary JSON text, and on arbitrary text", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.json(),
          fc.string(),
          fc.jsonValue().map((v) => JSON.stringify(v, null, 1)),
        ),
        (text) => {
          expect(outcome(parseLosslessJson, text)).toStrictEqual(outcome(parseWithParser, text));
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it("on the cases the fast path must hand over", () => {
    const cases = [
      '{"a": 1.0, "b": 1e-05}',
      '{"n": 12345678901234567890}',
      '{"n": -0}',
      '{"2": "x", "1": "y"}',
      `${"[".repeat(600)}${"]".repeat(600)}`,
      '{"prompt": [1, 2, 3], "max_tokens": 16}',
      '{"s": "1.5 and \\"quoted\\" 1e5", "t": true, "f": false, "z": null}',
      '{"a": 01}',
      '{"a": 1,}',
    ];
    for (const text of cases) expect(outcome(parseLosslessJson, text)).toStrictEqual(outcome(parseWithParser, text));
    const keyed = parseLosslessJson('{"2": "x", "1": "y"}', "body") as Record<PropertyKey, unknown>;
    expect(keyed[KEY_ORDER]).toEqual(["2", "1"]);
  });
});
