import { execFile, type ChildProcess } from "node:child_process";
import { promisify } from "node:util";
import { stageAppBundle, startProcess, waitFor, type StagedBundle } from "@dynamo/testkit";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseCli } from "../src/index.js";

const run = promisify(execFile);
const children: ChildProcess[] = [];
let bundle: StagedBundle;

beforeAll(async () => {
  // The bundle the image runs (workspace packages compiled in), staged outside the workspace with only the
  // dependencies it lists: a dependency it needs but does not list fails here, not in a cluster.
  bundle = await stageAppBundle("mocker");
}, 300_000);
afterAll(() => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  bundle?.remove();
});

/** Starts `node main.js ...args` on the staged bundle and resolves with the URL of each worker it prints. */
async function startMocker(args: string[], workers: number): Promise<{ child: ChildProcess; urls: string[] }> {
  const proc = startProcess(process.execPath, [bundle.main, ...args], { cwd: bundle.dir });
  children.push(proc.child);
  const urls = () => proc.lines.flatMap((line) => [...line.matchAll(/serving (http:\/\/\S+)/g)].map((m) => m[1]!));
  await waitFor(() => urls().length === workers || proc.child.exitCode !== null, "the workers to listen", 60_000);
  if (urls().length !== workers) throw new Error(`mocker exited early: ${proc.lines.join("\n")}`);
  return { child: proc.child, urls: urls() };
}

describe("the mocker process (plain node on the built bundle)", () => {
  it("prints its flags and refuses a bad one with status 2, naming it", async () => {
    const help = await run(process.execPath, [bundle.main, "--help"], { cwd: bundle.dir });
    for (const flag of [
      "--model-path",
      "--num-gpu-blocks-override",
      "--zmq-kv-events-ports",
      "--disaggregation-mode",
      "--kv-events-encoding",
    ])
      expect(help.stdout).toContain(flag);
    await expect(
      run(process.execPath, [bundle.main, "--disaggregation-mode=both"], { cwd: bundle.dir }),
    ).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining("--disaggregation-mode must be one of agg, prefill, decode"),
    });
    await expect(
      run(process.execPath, [bundle.main, "--block-size", "sixteen"], { cwd: bundle.dir }),
    ).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining("--block-size must be an integer"),
    });
  });

  it("runs four workers that answer a chat request with the openai client, and stops on SIGTERM", async () => {
    const { child, urls } = await startMocker(["--num-workers", "4", "--port", "0", "--host", "127.0.0.1"], 4);
    expect(new Set(urls).size).toBe(4);
    for (const url of urls) expect((await fetch(`${url}/health`)).status).toBe(200);
    const client = new OpenAI({ baseURL: `${urls[2]}/v1`, apiKey: "unused", maxRetries: 0 });
    const reply = await client.chat.completions.create({
      model: "Qwen/Qwen3-0.6B",
      messages: [
        {
          role: "user",
          content: "You are a cartographer mapping a coastline nobody has charted. Describe the first bay you find.",
        },
      ],
      stream: false,
      max_tokens: 30,
      temperature: 0.0,
    });
    expect(reply.choices[0]!.message.content!.split(" ")).toHaveLength(30);
    expect(reply.usage!.completion_tokens).toBe(30);
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });
});

describe("the command line", () => {
  it("reads the flags the shipped manifests use", () => {
    const parsed = parseCli([
      "--model-path=Qwen/Qwen3-0.6B",
      "--port=8001",
      "--block-size=16",
      "--num-gpu-blocks-override=16384",
      "--speedup-ratio=1.0",
      "--zmq-kv-events-ports=5557",
      "--zmq-replay-ports=5558",
      "--disaggregation-mode=prefill",
      "--num-workers",
      "2",
      "--data-parallel-size",
      "2",
      "--max-num-seqs=64",
      "--max-num-batched-tokens=4096",
      "--kv-events-encoding=map",
      "--no-enable-prefix-caching",
    ]);
    expect(parsed).toEqual({
      help: false,
      options: {
        host: "0.0.0.0",
        model: "Qwen/Qwen3-0.6B",
        port: 8001,
        blockSize: 16,
        numGpuBlocks: 16384,
        speedupRatio: 1,
        zmqKvEventsPorts: [5557],
        zmqReplayPorts: [5558],
        disaggregationMode: "prefill",
        numWorkers: 2,
        dataParallelSize: 2,
        maxNumSeqs: 64,
        maxNumBatchedTokens: 4096,
        kvEventsEncoding: "map",
        enablePrefixCaching: false,
      },
    });
    expect(parseCli(["--lora-modules=sql,chat", "--max-loras=2"])).toMatchObject({
      options: { loraModules: ["sql", "chat"], maxLoras: 2 },
    });
    expect(() => parseCli(["--zmq-kv-events-ports=5557,70000"])).toThrow("70000 is not a TCP port");
    expect(() => parseCli(["--unknown-flag"])).toThrow("--unknown-flag");
  });
});
