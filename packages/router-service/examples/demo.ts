/**
 * The router service on embedded defaults, against synthetic workers, in virtual time.
 *
 * Four simulated vLLM workers keep a prefix cache each and report it with vLLM-shaped KV events, which
 * the service applies to its router's index in-process (no NATS, no ZeroMQ). Chat conversations from two
 * applications (each with its own system prompt) arrive interleaved; every request is tokenized with the
 * embedded Qwen3 tokenizer and chat template, routed, and served by the chosen worker, which caches its
 * prompt. The same workload then runs through a round-robin service for comparison.
 *
 *   npx tsx --conditions=@dynamo/source packages/router-service/examples/demo.ts
 */
import { computeBlockHashes, computeSequenceHashes } from "@dynamo/kv-indexer";
import type { VllmKvEvent } from "@dynamo/kv-events";
import { seededRng } from "@dynamo/primitives";
import { TokenizerRegistry } from "@dynamo/tokenizer";
import { RouterService, type ServiceDecision } from "../src/index.js";

const BLOCK_SIZE = 16;
const CACHE_BLOCKS = 256;
const WORKERS = ["a", "b", "c", "d"].map((name, i) => ({ id: BigInt(i + 1), name, endpoint: `10.0.0.${i + 1}:8000` }));

/** A worker's prefix cache: engine block hashes in least-recently-used order, reported as vLLM events. */
class SyntheticEngine {
  private readonly cached = new Map<bigint, true>();

  /** Serves a prompt: caches its full blocks; returns the events a vLLM engine would publish. */
  serve(tokens: Uint32Array): VllmKvEvent[] {
    const engine = computeSequenceHashes(computeBlockHashes(tokens, BLOCK_SIZE));
    let first = 0;
    while (first < engine.length && this.cached.has(engine[first]!)) {
      this.cached.delete(engine[first]!); // refresh: most recently used last
      this.cached.set(engine[first]!, true);
      first++;
    }
    const events: VllmKvEvent[] = [];
    if (first === engine.length) return events;
    const blockHashes = [...engine.subarray(first)];
    for (const hash of blockHashes) this.cached.set(hash, true);
    events.push({
      type: "BlockStored",
      blockHashes,
      parentBlockHash: first > 0 ? engine[first - 1]! : null,
      tokenIds: [...tokens.subarray(first * BLOCK_SIZE, engine.length * BLOCK_SIZE)],
      blockSize: BLOCK_SIZE,
      loraId: null,
      medium: "GPU",
      loraName: null,
    });
    const evicted: bigint[] = [];
    for (const hash of this.cached.keys()) {
      if (this.cached.size - evicted.length <= CACHE_BLOCKS) break;
      evicted.push(hash);
    }
    for (const hash of evicted) this.cached.delete(hash);
    if (evicted.length > 0) events.push({ type: "BlockRemoved", blockHashes: evicted, medium: "GPU" });
    return events;
  }
}

interface Turn {
  readonly label: string;
  readonly conversation: string;
  readonly turn: number;
  readonly body: { model: string; messages: Array<{ role: string; content: string }> };
}

const APPS = {
  support:
    "You are the support assistant of a cloud storage company. Answer precisely, cite the relevant " +
    "documentation section, never invent features, and escalate billing questions to a human agent.",
  coding:
    "You are a senior TypeScript reviewer. Point out bugs first, then performance problems, then style. " +
    "Quote the lines you discuss and propose a corrected version of each.",
};

const QUESTIONS: Record<keyof typeof APPS, string[][]> = {
  support: [
    [
      "How do I restore a file deleted last week?",
      "And if it was in a shared folder?",
      "Can I restore a whole folder?",
    ],
    ["Why was I charged twice this month?", "Who can I talk to about it?", "How long does a refund take?"],
    ["Can I sync a folder from an external drive?", "What happens when the drive is unplugged?", "Does it resume?"],
  ],
  coding: [
    ["Review: const x = arr.map(f).filter(Boolean)[0]", "Is find() better here?", "What about empty arrays?"],
    ["Review: for (const k in obj) total += obj[k]", "Why is for-in risky?", "Rewrite it with Object.values."],
    ["Review: await Promise.all(ids.map(load))", "What if one load fails?", "Show allSettled instead."],
  ],
};

/** Conversations of both applications, turns interleaved as they would arrive. */
function workload(): Turn[] {
  const conversations = (Object.keys(APPS) as Array<keyof typeof APPS>).flatMap((app) =>
    QUESTIONS[app].map((questions, i) => ({ app, id: `${app}-${i + 1}`, questions })),
  );
  const turns: Turn[] = [];
  for (let turn = 0; turn < 3; turn++) {
    for (const c of conversations) {
      const messages = [{ role: "system", content: APPS[c.app] }];
      for (let t = 0; t <= turn; t++) {
        messages.push({ role: "user", content: c.questions[t]! });
        if (t < turn) messages.push({ role: "assistant", content: `(answer ${t + 1} of ${c.id})`.repeat(6) });
      }
      turns.push({
        label: `${c.id} turn ${turn + 1}`,
        conversation: c.id,
        turn,
        body: { model: "Qwen/Qwen3-0.6B", messages },
      });
    }
  }
  return turns;
}

interface Outcome {
  readonly decisions: ServiceDecision[];
  readonly cachedTokens: number;
  readonly promptTokens: number;
  readonly followUpsOnHolder: number;
  readonly followUps: number;
  readonly perWorker: Map<bigint, number>;
}

async function run(mode: "kv" | "round-robin", tokenizers: TokenizerRegistry, print: boolean): Promise<Outcome> {
  let now = 0;
  const service = await RouterService.start({
    router: { blockSize: BLOCK_SIZE, mode, rng: seededRng(7), now: () => now },
    tokenizer: tokenizers,
  });
  const engines = new Map(WORKERS.map((w) => [w.id, new SyntheticEngine()]));
  for (const w of WORKERS) service.addWorker({ id: w.id, name: `worker-${w.name}`, httpEndpoint: w.endpoint });
  const previousWorker = new Map<string, bigint>();
  const decisions: ServiceDecision[] = [];
  let cachedTokens = 0;
  let promptTokens = 0;
  let followUpsOnHolder = 0;
  let followUps = 0;
  const perWorker = new Map<bigint, number>();
  // Requests in flight: the prompt is processed 200 ms after routing, the answer streams for 3 s.
  const running: Array<{ bookingId: string; prefillDoneAt: number; endsAt: number }> = [];
  const advance = (to: number) => {
    now = to;
    for (const r of running) if (r.prefillDoneAt <= now) service.markPrefillComplete(r.bookingId);
    for (const r of running.filter((x) => x.endsAt <= now)) {
      service.free(r.bookingId);
      running.splice(running.indexOf(r), 1);
    }
  };
  if (print) console.log(`  #  request                  tokens  → worker    cached     why`);
  for (const [i, turn] of workload().entries()) {
    advance(now + 400); // virtual time: one request every 400 ms
    const d = await service.route({ body: turn.body, requestId: `req-${i + 1}` });
    decisions.push(d);
    const worker = WORKERS.find((w) => w.id === d.worker.workerId)!;
    promptTokens += d.isl;
    cachedTokens += d.cachedTokens;
    perWorker.set(worker.id, (perWorker.get(worker.id) ?? 0) + 1);
    if (turn.turn > 0) {
      followUps++;
      if (previousWorker.get(turn.conversation) === worker.id) followUpsOnHolder++;
    }
    previousWorker.set(turn.conversation, worker.id);
    if (print) {
      const cached = `${d.overlapBlocks}/${d.requiredBlocks} blk`;
      console.log(
        `${String(i + 1).padStart(3)}  ${turn.label.padEnd(22)} ${String(d.isl).padStart(6)}  → ${`worker-${worker.name}`.padEnd(9)} ${cached.padEnd(10)} ${why(d)}`,
      );
    }
    // The worker serves the request: its cache now holds the prompt, and it says so with KV events.
    const events = engines.get(worker.id)!.serve(d.tokens);
    if (events.length > 0) service.applyVllmEvents(d.worker, { ts: now / 1000, events, dataParallelRank: 0 });
    running.push({ bookingId: d.bookingId, prefillDoneAt: now + 200, endsAt: now + 3_000 });
  }
  await service.stop();
  return { decisions, cachedTokens, promptTokens, followUpsOnHolder, followUps, perWorker };
}

/** Why the router chose this worker, in a few words. */
function why(d: ServiceDecision): string {
  const candidates = d.explain.decode;
  const chosen = candidates.find((c) => c.chosen)!;
  const others = candidates.filter((c) => !c.chosen).map((c) => c.cost);
  const next = others.length > 0 ? Math.min(...others) : undefined;
  if (d.explain.policy !== "kv") return d.explain.policy;
  const bestOverlap = Math.max(...candidates.map((c) => c.overlapBlocks));
  if (chosen.overlapBlocks === 0 && bestOverlap === 0)
    return next === chosen.cost
      ? "nothing cached anywhere: tie, picked at random"
      : `nothing cached anywhere: least loaded (cost ${fmt(chosen.cost)} vs ${fmt(next!)})`;
  if (chosen.overlapBlocks < bestOverlap)
    return `a worker holding ${bestOverlap} blocks is busier: cost ${fmt(chosen.cost)} vs ${fmt(next!)}`;
  const versus =
    next === chosen.cost ? "tied, picked at random" : `vs ${next === undefined ? "-" : fmt(next)} next best`;
  return `holds ${chosen.overlapBlocks} prompt blocks: cost ${fmt(chosen.cost)} ${versus}`;
}

const fmt = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(1));
const pct = (part: number, whole: number) => `${whole > 0 ? Math.round((100 * part) / whole) : 0}%`;

async function main(): Promise<void> {
  const tokenizers = new TokenizerRegistry({ threads: 1 });
  try {
    console.log(
      `Router service on embedded defaults: Qwen3 tokenizer and chat template, KV block size ${BLOCK_SIZE}, ` +
        `${WORKERS.length} synthetic workers (prefix cache of ${CACHE_BLOCKS} blocks each) reporting vLLM KV events.\n` +
        `${QUESTIONS.support.length + QUESTIONS.coding.length} conversations from 2 applications, 3 turns each, interleaved.\n`,
    );
    const kv = await run("kv", tokenizers, true);
    const rr = await run("round-robin", tokenizers, false);
    const spread = WORKERS.map((w) => `worker-${w.name} ${kv.perWorker.get(w.id) ?? 0}`).join(", ");
    console.log(
      [
        "",
        "Verdict:",
        `- ${kv.followUpsOnHolder} of ${kv.followUps} follow-up turns went back to the worker that served the previous turn (it holds the ` +
          `conversation's prefix); the others went to a less busy worker.`,
        `- ${pct(kv.cachedTokens, kv.promptTokens)} of the prompt tokens were already cached on the chosen worker ` +
          `(${kv.cachedTokens} of ${kv.promptTokens}); round robin on the same workload: ${pct(rr.cachedTokens, rr.promptTokens)}.`,
        `- Requests per worker: ${spread}.`,
      ].join("\n"),
    );
  } finally {
    await tokenizers.close();
  }
}

await main();
