import { Template } from "@huggingface/jinja";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidRequest, ModelTokenizer, TokenizerRegistry } from "../src/index.js";
import { KEY_ORDER, PythonFloat, PythonInt, parseLosslessJson } from "../src/lossless-json.js";
import { pythonFloatRepr } from "../src/python-format.js";
import { renderTemplate } from "../src/template-runtime.js";
import { fixtureFiles } from "./support/fixtures.js";

describe("pythonFloatRepr", () => {
  it.each([
    [1.0, "1.0"],
    [1e-5, "1e-05"],
    [0.0001, "0.0001"],
    [1e16, "1e+16"],
    [1e15, "1000000000000000.0"],
    [9999999999999998, "9999999999999998.0"],
    [-0, "-0.0"],
    [0, "0.0"],
    [0.1, "0.1"],
    [-2.5, "-2.5"],
    [123456789.125, "123456789.125"],
    [1.5e300, "1.5e+300"],
    [1.2345678901234568e17, "1.2345678901234568e+17"],
    [5e-324, "5e-324"],
    [Number.NaN, "NaN"],
    [Number.POSITIVE_INFINITY, "Infinity"],
    [Number.NEGATIVE_INFINITY, "-Infinity"],
  ])("writes %d as json.dumps does: %s", (value, expected) => {
    expect(pythonFloatRepr(value, true)).toBe(expected);
  });

  it("writes str() spellings of non-finite floats", () => {
    expect(
      [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY].map((v) => pythonFloatRepr(v, false)),
    ).toEqual(["nan", "inf", "-inf"]);
  });
});

describe("parseLosslessJson", () => {
  it("keeps floats, long integers and key order as Python's json.loads does", () => {
    const parsed = parseLosslessJson(
      '{"b": 1, "2": [1.0, 12345678901234567890, -0, 1e400, "x\\u00e9"], "1": {"__proto__": 3}}',
      "body",
    ) as Record<string, unknown> & { [KEY_ORDER]?: string[] };
    expect(parsed[KEY_ORDER]).toEqual(["b", "2", "1"]);
    const list = parsed["2"] as unknown[];
    expect(list[0]).toEqual(new PythonFloat(1));
    expect(list[1]).toEqual(new PythonInt("12345678901234567890"));
    expect(Object.is(list[2], 0)).toBe(true);
    expect(list[3]).toEqual(new PythonFloat(Number.POSITIVE_INFINITY));
    expect(list[4]).toBe("xé");
    expect(Object.getPrototypeOf(parsed["1"])).toBe(Object.prototype);
    expect((parsed["1"] as Record<string, unknown>)["__proto__"]).toBe(3);
  });

  it.each(['{"a": 1,}', "[1 2]", "01", '{"a" 1}', '"open', "nul", "[".repeat(600) + "]".repeat(600), "1 2"])(
    "rejects %s with a message naming the field",
    (text) => {
      expect(() => parseLosslessJson(text, "messages[0].tool_calls[0].function.arguments")).toThrow(
        /^messages\[0\]\.tool_calls\[0\]\.function\.arguments: not valid JSON/,
      );
    },
  );
});

describe("chat templates render numbers as the engine does", () => {
  const render = (source: string, context: Record<string, unknown>) => renderTemplate(new Template(source), context);

  it("tojson is json.dumps, with its options", () => {
    const value = parseLosslessJson('{"b": [1.0, 2], "a": {"é": 1e-05}, "10": 1e16}', "body");
    expect(render("{{ v | tojson }}", { v: value })).toBe('{"b": [1.0, 2], "a": {"é": 1e-05}, "10": 1e+16}');
    expect(render("{{ v | tojson(indent=2, sort_keys=true, ensure_ascii=true) }}", { v: value })).toBe(
      '{\n  "10": 1e+16,\n  "a": {\n    "\\u00e9": 1e-05\n  },\n  "b": [\n    1.0,\n    2\n  ]\n}',
    );
    expect(render("{{ v | tojson(separators=(',', ':')) }}", { v: [1, 2.5] })).toBe("[1,2.5]");
  });

  it("prints floats and long integers as str() does", () => {
    const value = parseLosslessJson("[1.0, 1e-05, 12345678901234567890, -0.0]", "body");
    expect(render("{% for x in v %}{{ x }} {% endfor %}", { v: value })).toBe("1.0 1e-05 12345678901234567890 -0.0 ");
    expect(render("{{ (v[0] + 1) | tojson }} {{ v[0] is number }} {{ v[2] is integer }}", { v: value })).toBe(
      "2.0 true true",
    );
  });
});

const TOOL_BODY = `{
  "messages": [
    {"role": "user", "content": "Set it"},
    {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
      "function": {"name": "set_level", "arguments": "{\\"level\\": 1.0, \\"seed\\": 12345678901234567890}"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "ok"}
  ],
  "tools": [{"type": "function", "function": {"name": "set_level", "description": "Set the level",
    "parameters": {"type": "object", "properties": {"level": {"type": "number", "minimum": 1e-05,
    "maximum": 1.0, "default": -0.0}, "seed": {"type": "integer", "maximum": 1e16}}}}}]
}`;

describe("requests with numbers, as JSON text", () => {
  let qwen: ModelTokenizer;
  let registry: TokenizerRegistry;

  beforeAll(async () => {
    qwen = new ModelTokenizer(await fixtureFiles("qwen3"));
    registry = new TokenizerRegistry({ threads: 1 });
  });

  afterAll(() => registry.close());

  it("render tool schemas and tool-call arguments with the request's numbers", () => {
    const prompt = qwen.renderChat(TOOL_BODY);
    expect(prompt).toContain(
      '"properties": {"level": {"type": "number", "minimum": 1e-05, "maximum": 1.0, "default": -0.0}, ' +
        '"seed": {"type": "integer", "maximum": 1e+16}}',
    );
    expect(prompt).toContain('{"name": "set_level", "arguments": {"level": 1.0, "seed": 12345678901234567890}}');
  });

  it("parse tool-call arguments as Python does when the body is already an object", () => {
    const body = JSON.parse(TOOL_BODY) as { tools: unknown };
    const prompt = qwen.renderChat({ ...body, tools: undefined });
    expect(prompt).toContain('"arguments": {"level": 1.0, "seed": 12345678901234567890}');
  });

  it("tokenize the same on the pool as on the calling thread", async () => {
    const tokenizer = await registry.get("qwen3");
    const pooled = await tokenizer.tokenizeRequest("chat", TOOL_BODY, { returnPrompt: true });
    const local = qwen.tokenizeRequest("chat", TOOL_BODY, { returnPrompt: true });
    expect(pooled.prompt).toBe(local.prompt);
    expect(Array.from(pooled.tokenIds)).toEqual(Array.from(local.tokenIds));
  });

  it("reject malformed JSON text with InvalidRequest", () => {
    expect(() => qwen.tokenizeRequest("chat", '{"messages": [}')).toThrow(InvalidRequest);
    expect(() => qwen.tokenizeRequest("completions", "[1, 2]")).toThrow(/body: expected a JSON object/);
  });

  it("accept Python-typed numbers where integers are expected", () => {
    const ids = qwen.tokenizeRequest("completions", '{"prompt": [1, 2.0, 3], "truncate_prompt_tokens": 2.0}').tokenIds;
    expect(Array.from(ids)).toEqual([2, 3]);
  });
});
