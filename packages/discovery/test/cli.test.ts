import { execFile, spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { connect } from "@nats-io/transport-node";
import { NatsServer, waitFor } from "@dynamo/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NatsWorkerRegistrar, formatWorkerId, podWorkerId, workerIdFromName } from "../src/index.js";
import { FakeKubeApi, pod } from "./fake-kube-api.js";

const PACKAGE_DIR = fileURLToPath(new URL("..", import.meta.url));
const run = promisify(execFile);

/** The package's own tsup build (its config from the package directory), minus declarations and maps. */
const BUILD = `import { build } from "tsup"; await build({ outDir: process.argv[1], dts: false, sourcemap: false, silent: true });`;

/**
 * Builds the package into a directory laid out like an installed copy, `package.json` beside `dist/`,
 * and returns the path its `bin` entry names. The directory sits in the package's node_modules, so
 * the build's imports resolve the way they do once installed, without the workspace's TypeScript
 * sources or a loader.
 */
async function buildInstalledCopy(root: string): Promise<string> {
  await run(process.execPath, ["--input-type=module", "-e", BUILD, join(root, "dist")], {
    cwd: PACKAGE_DIR,
    timeout: 60_000,
  });
  copyFileSync(join(PACKAGE_DIR, "package.json"), join(root, "package.json"));
  const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { bin: Record<string, string> };
  return join(root, manifest.bin["dynamo-discovery"]!);
}

let BIN: string;

async function cli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], {
      env: { ...process.env, ...env },
      timeout: 30_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe("dynamo-discovery command", () => {
  let dir: string;
  let file: string;
  let installed: string;

  beforeAll(async () => {
    mkdirSync(join(PACKAGE_DIR, "node_modules"), { recursive: true });
    installed = mkdtempSync(join(PACKAGE_DIR, "node_modules", ".cli-build-"));
    BIN = await buildInstalledCopy(installed);
    dir = mkdtempSync(join(tmpdir(), "discovery-cli-"));
    file = join(dir, "workers.yaml");
    writeFileSync(
      file,
      [
        "workers:",
        "  - name: decode-0",
        "    role: decode",
        "    http: 127.0.0.1:8000",
        "    dpSize: 2",
        "    kvEvents: { endpoint: 'tcp://127.0.0.1:5557' }",
        "    model: Qwen/Qwen3-0.6B",
        "    blockSize: 16",
        "  - name: big-id",
        "    id: 18446744073709551615",
        "    http: 127.0.0.1:8001",
      ].join("\n"),
    );
  });
  afterAll(() => {
    for (const path of [installed, dir]) if (path) rmSync(path, { recursive: true, force: true });
  });

  it("is built as an executable command that runs on plain Node, as installed", async () => {
    expect(BIN).toBe(join(installed, "dist", "cli.js"));
    expect(readFileSync(BIN, "utf8").startsWith("#!/usr/bin/env node\n")).toBe(true);
    expect(statSync(BIN).mode & 0o111).not.toBe(0);
    // Run through its shebang, the way the bin link runs it, with Node first on the PATH.
    const PATH = [dirname(process.execPath), process.env["PATH"] ?? ""].join(delimiter);
    const { stdout } = await run(BIN, ["list", "--backend", "static", "--file", file, "--json"], {
      env: { ...process.env, PATH },
      timeout: 30_000,
    });
    expect((JSON.parse(stdout) as { name: string }[]).map((w) => w.name).sort()).toEqual(["big-id", "decode-0"]);
  });

  it("prints the static list as a table", async () => {
    const { code, stdout } = await cli(["list", "--backend", "static", "--file", file]);
    expect(code).toBe(0);
    const lines = stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^ID\s+NAME\s+ROLE\s+NAMESPACE\s+HTTP\s+DP\s+KV EVENTS\s+MODEL\s+BLOCK$/);
    expect(lines.slice(1).map((line) => line.split(/\s+/).slice(0, 3))).toEqual(
      [
        [formatWorkerId(workerIdFromName("decode-0")), "decode-0", "decode"],
        ["18446744073709551615", "big-id", "both"],
      ].sort((a, b) => (BigInt(a[0]!) < BigInt(b[0]!) ? -1 : 1)),
    );
    expect(stdout).toContain("tcp://127.0.0.1:5557 +1");
  });

  it("prints JSON with decimal ids", async () => {
    const { code, stdout } = await cli(["list", "--backend", "static", "--file", file, "--json"]);
    expect(code).toBe(0);
    const workers = JSON.parse(stdout) as { id: string; name: string; kvEvents?: { endpoints: string[] } }[];
    expect(workers.map((w) => [w.name, w.id]).sort()).toEqual([
      ["big-id", "18446744073709551615"],
      ["decode-0", formatWorkerId(workerIdFromName("decode-0"))],
    ]);
    expect(workers.find((w) => w.name === "decode-0")?.kvEvents?.endpoints).toEqual([
      "tcp://127.0.0.1:5557",
      "tcp://127.0.0.1:5558",
    ]);
  });

  it("exits 1 naming the line when the file is invalid, and 2 on a usage error", async () => {
    const broken = join(dir, "broken.yaml");
    writeFileSync(broken, "workers:\n  - name: a\n    http: localhost\n");
    const invalid = await cli(["list", "--backend", "static", "--file", broken, "--timeout", "300"]);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toContain(`${broken}:3:11: workers[0].http: must be host:port`);

    const usage = await cli(["list", "--backend", "static"], { DYN_DISCOVERY_FILE: "", DYN_DISCOVERY_WORKERS: "" });
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/needs --file, DYN_DISCOVERY_FILE or DYN_DISCOVERY_WORKERS/);
    const noBackend = await cli(["list"], { DYN_DISCOVERY_BACKEND: "" });
    expect(noBackend.code).toBe(2);
    expect(noBackend.stderr).toMatch(/--backend \(or DYN_DISCOVERY_BACKEND\) must be one of/);
  });

  it("falls back to the environment for unset flags: DYN_DISCOVERY_FILE, DYN_DISCOVERY_WORKERS, DYN_DISCOVERY_BACKEND", async () => {
    const listed = (stdout: string): string[] => (JSON.parse(stdout) as { name: string }[]).map((w) => w.name).sort();
    const fromFile = await cli(["list", "--backend", "static", "--json"], {
      DYN_DISCOVERY_FILE: file,
      DYN_DISCOVERY_WORKERS: "",
    });
    expect(fromFile.code).toBe(0);
    expect(listed(fromFile.stdout)).toEqual(["big-id", "decode-0"]);

    const inline = await cli(["list", "--json"], {
      DYN_DISCOVERY_BACKEND: "static",
      DYN_DISCOVERY_FILE: "",
      DYN_DISCOVERY_WORKERS: "[{name: inline-0, http: '127.0.0.1:9000'}]",
    });
    expect(inline.code).toBe(0);
    expect(listed(inline.stdout)).toEqual(["inline-0"]);

    // A flag wins over the environment.
    const flagged = await cli(["list", "--backend", "static", "--file", file, "--json"], {
      DYN_DISCOVERY_BACKEND: "nats",
      DYN_DISCOVERY_FILE: join(dir, "missing.yaml"),
      DYN_DISCOVERY_WORKERS: "[{name: inline-0, http: '127.0.0.1:9000'}]",
    });
    expect(flagged.code).toBe(0);
    expect(listed(flagged.stdout)).toEqual(["big-id", "decode-0"]);
  });

  it("streams changes with watch until interrupted", async () => {
    const watched = join(dir, "watched.yaml");
    writeFileSync(watched, "- {name: first, http: '127.0.0.1:1'}\n");
    const child = spawn(process.execPath, [BIN, "watch", "--backend", "static", "--file", watched], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    await waitFor(() => stdout.includes("first"), "the initial table", 20_000);
    writeFileSync(watched, "- {name: first, http: '127.0.0.1:1'}\n- {name: second, http: '127.0.0.1:2'}\n");
    await waitFor(() => stdout.includes("added"), "the change line", 10_000);
    child.kill("SIGINT");
    expect(await exited).toBe(0);
    expect(stdout).toContain(`added ${formatWorkerId(workerIdFromName("second"))} second 127.0.0.1:2`);
  });

  it("lists the NATS registry", async () => {
    const server = await NatsServer.start();
    const nc = await connect({ servers: server.url });
    const registrar = new NatsWorkerRegistrar({
      connection: nc,
      worker: {
        id: workerIdFromName("nats-worker"),
        name: "nats-worker",
        role: "decode",
        namespace: "vllm-agg-2",
        component: "backend",
        httpEndpoint: "127.0.0.1:8000",
        rankHttpEndpoints: ["127.0.0.1:8000"],
        dpSize: 1,
        dpStartRank: 0,
      },
    });
    try {
      await registrar.register();
      const { code, stdout } = await cli([
        "list",
        "--backend",
        "nats",
        "--url",
        server.url,
        "--namespace",
        "vllm-agg",
        "--json",
      ]);
      expect(code).toBe(0);
      expect((JSON.parse(stdout) as { name: string; namespace: string }[]).map((w) => [w.name, w.namespace])).toEqual([
        ["nats-worker", "vllm-agg-2"],
      ]);
    } finally {
      await registrar.deregister();
      await nc.close();
      await server.dispose();
    }
  });

  it("lists Kubernetes pods through a kubeconfig", async () => {
    const api = await FakeKubeApi.start("serving");
    try {
      api.apply(
        "pods",
        pod("engine-0", {
          ip: "10.2.0.1",
          labels: { "nvidia.com/dynamo-component-class": "worker", "nvidia.com/dynamo-namespace": "vllm-agg" },
        }),
      );
      const kubeconfig = join(dir, "kubeconfig.yaml");
      writeFileSync(
        kubeconfig,
        [
          "apiVersion: v1",
          "kind: Config",
          `clusters: [{name: fake, cluster: {server: "${api.url}", insecure-skip-tls-verify: true}}]`,
          "users: [{name: tester, user: {}}]",
          "contexts: [{name: fake, context: {cluster: fake, user: tester}}]",
          "current-context: fake",
        ].join("\n"),
      );
      const { code, stdout } = await cli(
        ["list", "--backend", "kubernetes", "--namespace", "serving", "--kubeconfig", kubeconfig, "--json"],
        {
          DYN_NAMESPACE_PREFIX: "",
          DYN_NAMESPACE: "",
        },
      );
      expect(code).toBe(0);
      const [worker] = JSON.parse(stdout) as { id: string; httpEndpoint: string }[];
      expect(worker).toMatchObject({ id: formatWorkerId(podWorkerId("engine-0")), httpEndpoint: "10.2.0.1:8000" });
    } finally {
      await api.close();
    }
  });
});
