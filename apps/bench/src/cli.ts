import { existsSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Progress, machineDescription, type Bench, type Figure } from "./framework.js";
import { formatMarkdownFile, renderReport, writeHtmlReport, writeMarkdownSection } from "./report.js";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../../..");
const benchDir = join(here, "benches");

function available(): string[] {
  return readdirSync(benchDir)
    .filter((f) => f.endsWith(".ts"))
    .map((f) => f.slice(0, -3))
    .sort();
}

function printFigures(figures: Record<string, Figure>, indent = ""): void {
  for (const [key, value] of Object.entries(figures)) {
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      console.log(`${indent}${key}:`);
      printFigures(value, `${indent}  `);
    } else if (Array.isArray(value) && value.some((v) => typeof v === "object" && v !== null)) {
      console.log(`${indent}${key}:`);
      for (const item of value) console.log(`${indent}  ${JSON.stringify(item)}`);
    } else {
      const shown =
        typeof value === "number" ? value.toLocaleString("en-US", { maximumFractionDigits: 2 }) : JSON.stringify(value);
      console.log(`${indent}${key}: ${shown}`);
    }
  }
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h") {
    console.error(
      `usage: npm run bench -- <name> [--json] [--write-docs] [options]\nbenchmarks: ${available().join(", ")}\n` +
        "--write-docs replaces the benchmark's section of docs/benchmarks.md and writes docs/reports/<name>.html",
    );
    return name ? 0 : 2;
  }
  const file = join(benchDir, `${name}.ts`);
  if (!/^[a-z0-9-]+$/.test(name) || !existsSync(file)) {
    console.error(`unknown benchmark ${JSON.stringify(name)}; available: ${available().join(", ")}`);
    return 2;
  }
  const { bench } = (await import(pathToFileURL(file).href)) as { bench: Bench };
  const json = rest.includes("--json");
  const writeDocs = rest.includes("--write-docs");
  const args = rest.filter((a) => a !== "--json" && a !== "--write-docs");
  const progress = new Progress(name);
  const result = await bench.run({ args, json, progress, root });

  printFigures(result.figures);
  if (writeDocs) {
    const machine = machineDescription();
    const command = `npm run bench -- ${[name, ...args].join(" ")}`;
    const section = result.docsSection?.name ?? name;
    const measured = `Measured with \`${command}\` on ${machine}, ${new Date().toISOString().slice(0, 10)}. Plots: [reports/${section}.html](reports/${section}.html).`;
    writeMarkdownSection(
      root,
      section,
      result.docsSection === undefined
        ? `## ${name}\n\n${bench.description}\n\n${measured}\n\n${result.markdown}`
        : `### ${result.docsSection.title}\n\n${measured}\n\n${result.markdown}`,
      result.docsSection?.after,
    );
    await formatMarkdownFile(root);
    const report = writeHtmlReport(root, section, renderReport(section, result, machine, command));
    progress.note(`wrote docs/benchmarks.md (section "${section}") and ${report.slice(root.length + 1)}`);
  } else {
    progress.note("docs left unchanged (--write-docs writes docs/benchmarks.md and docs/reports/)");
  }
  if (json) console.log(JSON.stringify(result.figures));
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  },
);
