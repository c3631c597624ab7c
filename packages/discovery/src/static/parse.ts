import { LineCounter, isMap, isSeq, parseDocument, type Document } from "yaml";
import { z } from "zod";
import type { DiscoveryProblem } from "../registry.js";
import type { WorkerInfo } from "../worker.js";
import { formatWorkerId } from "../worker-id.js";
import { workerFromSpec, workerSpecSchema } from "../worker-spec.js";

/** Outcome of parsing a worker document: the workers, or every problem found (with positions). */
export type WorkerDocumentResult = { ok: true; workers: WorkerInfo[] } | { ok: false; problems: DiscoveryProblem[] };

type PathKey = string | number;

/**
 * Parses a YAML or JSON worker list (JSON is parsed as YAML 1.2, so both report line and column).
 * Accepted shapes: a bare list of workers, or `{ workers: [...], defaults: {...} }` where `defaults`
 * fills fields each worker leaves out. Integers are read as bigints so 64-bit ids keep every digit.
 */
export function parseWorkerDocument(text: string, source: string, baseDir?: string): WorkerDocumentResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, intAsBigInt: true, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors.map((error) => {
        const offset = error.pos[0];
        const { line, col } = lineCounter.linePos(offset);
        return {
          source,
          line,
          column: col,
          message: error.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, ""),
        };
      }),
    };
  }
  const root: unknown = doc.toJS();
  const located = (path: PathKey[], message: string): DiscoveryProblem => {
    const offset = nodeOffset(doc, path);
    if (offset === undefined) return { source, message };
    const { line, col } = lineCounter.linePos(offset);
    return { source, message, line, column: col };
  };

  let entries: unknown[];
  let entriesPath: PathKey[];
  let defaults: Record<string, unknown> = {};
  if (Array.isArray(root)) {
    entries = root;
    entriesPath = [];
  } else if (isPlainObject(root) && Array.isArray(root["workers"])) {
    const extra = Object.keys(root).filter((key) => key !== "workers" && key !== "defaults");
    if (extra.length > 0) return { ok: false, problems: [located([extra[0]!], `unknown top-level key "${extra[0]}"`)] };
    if (root["defaults"] !== undefined && !isPlainObject(root["defaults"])) {
      return { ok: false, problems: [located(["defaults"], "defaults must be a mapping")] };
    }
    entries = root["workers"];
    entriesPath = ["workers"];
    defaults = (root["defaults"] as Record<string, unknown> | undefined) ?? {};
  } else if (root === null || root === undefined) {
    entries = [];
    entriesPath = [];
  } else {
    return { ok: false, problems: [located([], "expected a list of workers or a mapping with a 'workers' list")] };
  }

  const problems: DiscoveryProblem[] = [];
  const workers: WorkerInfo[] = [];
  /** The first entry of each id, so a second one is rejected naming both. */
  const firstOfId = new Map<bigint, { path: PathKey[]; name: string }>();
  entries.forEach((entry, index) => {
    const entryPath = [...entriesPath, index];
    if (!isPlainObject(entry)) {
      problems.push(located(entryPath, "a worker must be a mapping"));
      return;
    }
    const parsed = workerSpecSchema.safeParse(numbersFromBigints({ ...defaults, ...entry }, ["id"]));
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        const issuePath = issue.path.filter((key): key is PathKey => typeof key !== "symbol");
        const [first] = issuePath;
        const fromDefaults = typeof first === "string" && !(first in entry) && first in defaults;
        const path = fromDefaults ? ["defaults", ...issuePath] : [...entryPath, ...issuePath];
        problems.push(located(path, `${formatPath(path)}: ${issueMessage(issue)}`));
      }
      return;
    }
    const worker = workerFromSpec(parsed.data, baseDir === undefined ? {} : { baseDir });
    const first = firstOfId.get(worker.id);
    if (first) {
      // The id is written out or derived from the name: point at whichever this entry gives.
      const path = [...entryPath, "id" in entry ? "id" : "name"];
      const firstLine = located(first.path, "").line;
      const where = `${formatPath(first.path)} "${first.name}"${firstLine === undefined ? "" : ` on line ${firstLine}`}`;
      problems.push(
        located(
          path,
          `${formatPath(entryPath)}: duplicate worker id ${formatWorkerId(worker.id)}, already used by ${where}`,
        ),
      );
      return;
    }
    firstOfId.set(worker.id, { path: entryPath, name: worker.name });
    workers.push(worker);
  });
  problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
  return problems.length > 0 ? { ok: false, problems } : { ok: true, workers };
}

function issueMessage(issue: z.core.$ZodIssue): string {
  if (issue.code === "unrecognized_keys") return `unknown field(s) ${issue.keys.map((k) => `"${k}"`).join(", ")}`;
  return issue.message;
}

/** Offset of the deepest existing node on `path` (falls back to parents for missing keys). */
function nodeOffset(doc: Document, path: PathKey[]): number | undefined {
  for (let depth = path.length; depth >= 0; depth--) {
    const node = depth === 0 ? doc.contents : doc.getIn(path.slice(0, depth), true);
    if (node && typeof node === "object" && "range" in node && Array.isArray(node.range)) {
      const [start] = node.range as number[];
      // A mapping's range starts at its first key, which is where a missing field belongs.
      if (start !== undefined && (depth === path.length || isMap(node) || isSeq(node))) return start;
    }
  }
  return undefined;
}

function formatPath(path: PathKey[]): string {
  return (
    path.map((key, i) => (typeof key === "number" ? `[${key}]` : i === 0 ? key : `.${key}`)).join("") || "document"
  );
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Converts bigints (from `intAsBigInt`) back to numbers where they are safe, except for `keep` keys. */
function numbersFromBigints(value: unknown, keep: readonly string[]): unknown {
  if (typeof value === "bigint") {
    return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(value) : value;
  }
  if (Array.isArray(value)) return value.map((item) => numbersFromBigints(item, []));
  if (isPlainObject(value)) {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, keep.includes(key) ? item : numbersFromBigints(item, [])]),
    );
  }
  return value;
}
