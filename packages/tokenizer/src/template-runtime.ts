import { Environment, Interpreter, type Template } from "@huggingface/jinja";
import { KEY_ORDER, PythonFloat, PythonInt } from "./lossless-json.js";
import { pythonFloatRepr, pythonIntText } from "./python-format.js";

/**
 * Renders a parsed chat template with Python's numbers: a float stays a float (`1.0`, `1e-05`,
 * `1e+16`), a long integer keeps its digits, and `tojson` is Python's `json.dumps` (as in
 * Transformers, which the engine renders with), not `JSON.stringify`. Objects keep their key order.
 *
 * @huggingface/jinja exports only `Environment` and `Interpreter`: its value classes are taken from
 * values it makes, and `tojson` is intercepted on the interpreter instance (its `applyFilter`).
 */

interface RuntimeValue {
  readonly value: unknown;
  readonly type: string;
}
type RuntimeClass<T = unknown> = new (value: T) => RuntimeValue & { readonly value: T };

interface FilterNode {
  readonly type: string;
  readonly value?: string;
  readonly callee?: { readonly type: string; readonly value?: string };
  readonly args?: readonly unknown[];
}

interface InterpreterInternals {
  applyFilter(operand: RuntimeValue, filter: FilterNode, environment: Environment): RuntimeValue;
  evaluateArguments(args: readonly unknown[], environment: Environment): [RuntimeValue[], Map<string, RuntimeValue>];
}

const probe = new Environment();
let probes = 0;
const classOf = <T>(value: T) => probe.set(`probe${probes++}`, value).constructor as RuntimeClass<T>;
const IntegerValue = classOf(1);
const FloatValue = classOf(0.5);
const StringValue = classOf("");
const BooleanValue = classOf(true);
const NullValue = classOf(null);
const UndefinedValue = classOf(undefined);
const ArrayValue = classOf<RuntimeValue[]>([]);
const ObjectValue = classOf<Map<string, RuntimeValue>>(new Map());

/** A float as Python prints it in `{{ x }}`. */
class PythonFloatValue extends FloatValue {
  override toString(): string {
    return pythonFloatRepr(this.value, false);
  }
}

/** An integer beyond 2^53 with all its digits (`value` is the nearest double, for arithmetic). */
class PythonIntValue extends IntegerValue {
  constructor(readonly digits: string) {
    super(Number(digits));
  }
  override toString(): string {
    return this.digits;
  }
}

function toRuntime(value: unknown): RuntimeValue {
  if (typeof value === "number") return Number.isInteger(value) ? new IntegerValue(value) : new PythonFloatValue(value);
  if (value instanceof PythonFloat) return new PythonFloatValue(value.value);
  if (value instanceof PythonInt) return new PythonIntValue(value.digits);
  if (typeof value === "string") return new StringValue(value);
  if (typeof value === "boolean") return new BooleanValue(value);
  if (value === null) return new NullValue(null);
  if (value === undefined) return new UndefinedValue(undefined);
  if (Array.isArray(value)) return new ArrayValue(value.map(toRuntime));
  if (typeof value === "object") {
    const object = value as Record<string, unknown> & { [KEY_ORDER]?: string[] };
    const keys = object[KEY_ORDER] ?? Object.keys(object);
    return new ObjectValue(new Map(keys.map((key) => [key, toRuntime(object[key])])));
  }
  return new Environment().set("value", value); // a function
}

interface DumpOptions {
  readonly indent: string | null;
  readonly ensureAscii: boolean;
  readonly sortKeys: boolean;
  readonly itemSeparator: string;
  readonly keySeparator: string;
}

function quote(text: string, ensureAscii: boolean): string {
  const quoted = JSON.stringify(text);
  if (!ensureAscii) return quoted;
  return quoted.replace(/[\u0080-\uffff]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** Python's `json.dumps` of a template value. */
function dumps(value: RuntimeValue, options: DumpOptions, depth: number): string {
  if (value instanceof NullValue || value instanceof UndefinedValue) return "null";
  if (value instanceof BooleanValue) return value.value ? "true" : "false";
  if (value instanceof PythonIntValue) return value.digits;
  if (value instanceof IntegerValue) return pythonIntText(value.value);
  if (value instanceof FloatValue) return pythonFloatRepr(value.value, true);
  if (value instanceof StringValue) return quote(value.value, options.ensureAscii);
  const inner = options.indent === null ? "" : `\n${options.indent.repeat(depth + 1)}`;
  const outer = options.indent === null ? "" : `\n${options.indent.repeat(depth)}`;
  if (value instanceof ArrayValue) {
    if (value.value.length === 0) return "[]";
    const items = value.value.map((item) => dumps(item, options, depth + 1));
    return `[${inner}${items.join(options.itemSeparator + inner)}${outer}]`;
  }
  if (value.value instanceof Map) {
    const entries = [...(value.value as Map<string, RuntimeValue>)];
    if (entries.length === 0) return "{}";
    if (options.sortKeys) entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const items = entries.map(
      ([key, item]) => `${quote(key, options.ensureAscii)}${options.keySeparator}${dumps(item, options, depth + 1)}`,
    );
    return `{${inner}${items.join(options.itemSeparator + inner)}${outer}}`;
  }
  throw new Error(`Object of type ${value.type} is not JSON serializable`);
}

/** `tojson(indent=None, ensure_ascii=False, separators=None, sort_keys=False)`, as Transformers defines it. */
function dumpOptions(kwargs: ReadonlyMap<string, RuntimeValue>): DumpOptions {
  const indent = kwargs.get("indent")?.value;
  const separators = kwargs.get("separators")?.value;
  const indentText = typeof indent === "number" ? " ".repeat(indent) : typeof indent === "string" ? indent : null;
  const pair = Array.isArray(separators) ? (separators as RuntimeValue[]).map((s) => String(s.value)) : undefined;
  return {
    indent: indentText,
    ensureAscii: kwargs.get("ensure_ascii")?.value === true,
    sortKeys: kwargs.get("sort_keys")?.value === true,
    itemSeparator: pair?.[0] ?? (indentText === null ? ", " : ","),
    keySeparator: pair?.[1] ?? ": ",
  };
}

function pythonRange(start: number, stop?: number, step = 1): number[] {
  const [from, to] = stop === undefined ? [0, start] : [start, stop];
  if (step === 0) throw new Error("range() step must not be zero");
  const values: number[] = [];
  for (let i = from; step > 0 ? i < to : i > to; i += step) values.push(i);
  return values;
}

const MONTHS = ["January", "February", "March", "April", "May", "June"].concat([
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
]);
const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/** `datetime.now().strftime(format)` for the directives chat templates use. */
function strftimeNow(format: string): string {
  const now = new Date();
  const pad = (n: number) => String(n).padStart(2, "0");
  const directives: Record<string, () => string> = {
    Y: () => String(now.getFullYear()),
    y: () => pad(now.getFullYear() % 100),
    m: () => pad(now.getMonth() + 1),
    d: () => pad(now.getDate()),
    B: () => MONTHS[now.getMonth()]!,
    b: () => MONTHS[now.getMonth()]!.slice(0, 3),
    A: () => DAYS[now.getDay()]!,
    a: () => DAYS[now.getDay()]!.slice(0, 3),
    H: () => pad(now.getHours()),
    M: () => pad(now.getMinutes()),
    S: () => pad(now.getSeconds()),
    "%": () => "%",
  };
  return format.replace(/%(.)/g, (whole, directive: string) => directives[directive]?.() ?? whole);
}

const GLOBALS: Readonly<Record<string, unknown>> = {
  false: false,
  true: true,
  none: null,
  False: false,
  True: true,
  None: null,
  raise_exception: (message: unknown) => {
    throw new Error(String(message));
  },
  range: pythonRange,
  strftime_now: strftimeNow,
};

/** Renders `template` with `context` (see above). Throws what the template raises. */
export function renderTemplate(template: Template, context: Readonly<Record<string, unknown>>): string {
  const environment = new Environment();
  for (const [name, value] of Object.entries(GLOBALS)) environment.set(name, value);
  for (const [name, value] of Object.entries(context)) {
    if (name in GLOBALS) throw new Error(`Variable already declared: ${name}`);
    environment.setVariable(name, toRuntime(value) as never);
  }
  const interpreter = new Interpreter(environment);
  const internals = interpreter as unknown as InterpreterInternals;
  const applyFilter = internals.applyFilter.bind(interpreter);
  internals.applyFilter = (operand, filter, scope) => {
    if (filter.type === "Identifier" && filter.value === "tojson") {
      return new StringValue(dumps(operand, dumpOptions(new Map()), 0));
    }
    if (filter.type === "CallExpression" && filter.callee?.type === "Identifier" && filter.callee.value === "tojson") {
      const [, kwargs] = internals.evaluateArguments(filter.args ?? [], scope);
      return new StringValue(dumps(operand, dumpOptions(kwargs), 0));
    }
    return applyFilter(operand, filter, scope);
  };
  return String((interpreter.run(template.parsed) as RuntimeValue).value);
}
