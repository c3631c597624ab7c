import { execFile, spawn, type ChildProcess } from "node:child_process";
import { promisify } from "node:util";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MockerHandle } from "@dynamo/mocker";
import { freePort, stageAppBundle, waitFor, type StagedBundle } from "@dynamo/testkit";
import { TokenizerRegistry } from "@dynamo/tokenizer";
import { MODEL, eppHeaders, mocker, withTokens } from "./support.js";

const run = promisify(execFile);
const children: ChildProcess[] = [];
let bundle: StagedBundle;
let engine: MockerHandle;

/** The seed's sample chat request (docs: "Send inference request to gateway"). */
const SEED_REQUEST = {
  model: MODEL,
  messages: [
    {
      role: "user" as const,
      content:
        "In the heart of Eldoria, an ancient land of boundless magic and mysterious creatures, lies the long-forgotten city of Aeloria. Once a beacon of knowledge and power, Aeloria was buried beneath the shifting sands of time, lost to the world for centuries. You are an intrepid explorer, known for your unparalleled curiosity and courage, who has stumbled upon an ancient map hinting at ests that Aeloria holds a secret so profound that it has the potential to reshape the very fabric of reality.",
    },
  ],
  stream: false as const,
  max_tokens: 30,
  temperature: 0.0,
};

beforeAll(async () => {
  // The bundle the image runs (workspace packages compiled in), staged outside the workspace with only the
  // dependencies it lists: a dependency it needs but does not list fails here, not in a cluster.
  bundle = await stageAppBundle("frontend");
  engine = await mocker({ workerNamePrefix: "dynamo-worker-7d9f" });
}, 300_000);

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  await engine?.close();
  bundle?.remove();
});

/** `node main.js ...args` on the staged bundle with `env`; resolves once it logs that it listens. */
async function start(
  args: string[],
  env: Record<string, string>,
): Promise<{ child: ChildProcess; output: () => string }> {
  const child = spawn(process.execPath, [bundle.main, ...args], {
    cwd: bundle.dir,
    env: { PATH: process.env["PATH"] ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let out = "";
  child.stdout!.on("data", (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (out += chunk.toString()));
  await waitFor(() => out.includes("frontend listening") || child.exitCode !== null, "the frontend to listen", 60_000);
  if (child.exitCode !== null) throw new Error(`frontend exited early: ${out}`);
  return { child, output: () => out };
}

describe("the frontend process (plain node on the built bundle)", () => {
  it("prints its flags, and refuses a bad value with status 2 naming it", async () => {
    const help = await run(process.execPath, [bundle.main, "--help"], { cwd: bundle.dir });
    for (const flag of ["--port", "--engine-url", "--worker-id", "--enforce-disagg", "--data-parallel-size"])
      expect(help.stdout).toContain(flag);
    await expect(
      run(process.execPath, [bundle.main, "--port=99999"], { cwd: bundle.dir, env: { PATH: process.env["PATH"] } }),
    ).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining("--port") });
    await expect(
      run(process.execPath, [bundle.main], {
        cwd: bundle.dir,
        env: { PATH: process.env["PATH"], DYN_ENFORCE_DISAGG: "maybe" },
      }),
    ).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining("DYN_ENFORCE_DISAGG") });
  });

  it("runs as the shipped manifest does: /health, the seed's request with the picker's headers answered by the mocker, SIGTERM", async () => {
    const port = await freePort();
    const worker = engine.workers[0]!;
    // POD_NAME is the worker's name: the sidecar derives the same worker id as discovery (and the mocker).
    const { child } = await start([`--port=${port}`, `--engine-url=${worker.url}`, "--host=127.0.0.1"], {
      POD_NAME: worker.name,
      DYN_ENFORCE_DISAGG: "false",
    });
    const health = await fetch(`http://127.0.0.1:${port}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: "healthy", worker_id: String(worker.id) });

    const registry = new TokenizerRegistry({ threads: 1 });
    const tokens = Array.from((await (await registry.get(MODEL)).tokenizeRequest("chat", SEED_REQUEST)).tokenIds);
    await registry.close();
    const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: "unused", maxRetries: 0 });
    const reply = await client.chat.completions.create(withTokens(SEED_REQUEST, tokens), {
      headers: eppHeaders(worker.id),
    });
    expect(reply.choices[0]!.message.content!.split(" ")).toHaveLength(30);
    expect(reply.usage!.prompt_tokens).toBe(tokens.length);
    expect(engine.received.at(-1)!.promptTokenIds).toEqual(tokens);

    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });
});
