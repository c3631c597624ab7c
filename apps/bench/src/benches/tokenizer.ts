import { existsSync, readFileSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import {
  ModelTokenizer,
  TokenizerRegistry,
  readTokenizerSource,
  type EncoderImplementation,
  type TokenizerFileTexts,
} from "@dynamo/tokenizer";
import type { Tokenizer as NativeTokenizer } from "@anush008/tokenizers";
import {
  cdfPoints,
  markdownTable,
  percentile,
  round,
  type Bench,
  type BenchContext,
  type Chart,
  type Figure,
} from "../framework.js";
import { NEVER_SEEN_DESCRIPTION, measureNeverSeen } from "../tokenizer-never-seen.js";

/**
 * Tokenizer throughput and latency, one thread and pooled, for every implementation tried: the exact
 * byte-level BPE fast path (chosen), tokenizers.js, and the Rust `tokenizers` crate through its Node
 * binding (the reference). Prompts are Qwen3 prompts of about 1k, 8k and 32k tokens, all different.
 * Warm figures are the best of several rounds over the same prompts, so the word caches are warm after
 * the first; cold figures are one pass over other prompts by a tokenizer loaded just before, its caches empty.
 */

type Implementation = EncoderImplementation | "native";
const IMPLEMENTATIONS: readonly Implementation[] = ["byte-level-bpe", "tokenizers-js", "native"];
const CHOSEN: Implementation = "byte-level-bpe";

const SIZES = [
  { label: "1k", tokens: 1_000, prompts: 160 },
  { label: "8k", tokens: 8_000, prompts: 32 },
  { label: "32k", tokens: 32_000, prompts: 10 },
] as const;
type SizeLabel = (typeof SIZES)[number]["label"];

const ROUNDS = 3;
const POOL_THREADS = 2;
const ELD_RESOLUTION_MS = 2;
const ELD_WINDOW_MS = 3000;

interface Encoders {
  /** Encodes on this thread (native: one encode at a time on one libuv thread). */
  single(text: string): Promise<Uint32Array>;
  /** Encodes on the pool (native: concurrent encodes on the libuv thread pool). */
  pooled(text: string): Promise<Uint32Array>;
  /** Requests kept in flight when pooled. */
  inFlight: number;
  /** Loads the tokenizer anew on this thread (caches empty) and encodes with it one at a time. */
  fresh(): Promise<(text: string) => Promise<Uint32Array>>;
  close(): Promise<void>;
}

interface RunStats {
  tokensPerSec: number;
  p50Ms: number;
  p99Ms: number;
  latencies: number[];
}

interface SizeResult {
  single: RunStats;
  pooled: RunStats;
  /** One thread, first pass over unseen prompts with a freshly loaded tokenizer. */
  cold: RunStats;
}

interface LoopDelay {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/**
 * Documents the prompts are drawn from: the repository's own prose and code (package READMEs and
 * TypeScript sources), so that every clone draws the same mix of English, identifiers and punctuation.
 */
function sourceLines(root: string): string[] {
  const files = [join(root, "README.md")];
  for (const folder of ["packages", "apps"]) {
    for (const name of readdirSync(join(root, folder)).sort()) {
      const dir = join(root, folder, name);
      if (existsSync(join(dir, "README.md"))) files.push(join(dir, "README.md"));
      const src = join(dir, "src");
      if (existsSync(src))
        files.push(
          ...readdirSync(src)
            .filter((f) => f.endsWith(".ts"))
            .sort()
            .map((f) => join(src, f)),
        );
    }
  }
  return files.flatMap((file) => readFileSync(file, "utf8").split("\n")).filter((line) => line.trim().length > 0);
}

/** Varied prompt text: lines of the source documents, words respelled and interleaved with numbers, CJK and emoji. */
function promptTexts(lines: readonly string[], count: number, chars: number, seed: number): string[] {
  let state = seed;
  const random = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const syllables = ["ka", "ro", "mi", "tel", "ion", "str", "qu", "ze", "an", "por", "lu", "vex"];
  const emoji = ["🚀", "👍🏽", "🎉", "🤖", "📦"];
  const word = () =>
    Array.from({ length: 2 + Math.floor(random() * 3) }, () => syllables[Math.floor(random() * syllables.length)]).join(
      "",
    );
  const decorate = (line: string) =>
    line
      .split(" ")
      .map((w) => {
        const r = random();
        if (r < 0.08) return word();
        if (r < 0.11) return String(Math.floor(random() * 1e6));
        if (r < 0.12)
          return String.fromCodePoint(0x4e00 + Math.floor(random() * 0x5000), 0x4e00 + Math.floor(random() * 0x5000));
        if (r < 0.125) return emoji[Math.floor(random() * emoji.length)]!;
        return w;
      })
      .join(" ");
  return Array.from({ length: count }, () => {
    const parts: string[] = [];
    let length = 0;
    while (length < chars) {
      const line = decorate(lines[Math.floor(random() * lines.length)]!);
      parts.push(line);
      length += line.length + 1;
    }
    return parts.join("\n");
  });
}

async function encoders(
  implementation: Implementation,
  native: typeof NativeTokenizer,
  files: TokenizerFileTexts,
): Promise<Encoders> {
  if (implementation === "native") {
    const nativeEncoder = (tokenizer: NativeTokenizer) => async (text: string) =>
      Uint32Array.from((await tokenizer.encode(text, null, { addSpecialTokens: false })).getIds());
    const encode = nativeEncoder(native.fromString(files.tokenizer));
    return {
      single: encode,
      pooled: encode,
      inFlight: 4,
      fresh: async () => nativeEncoder(native.fromString(files.tokenizer)),
      close: async () => undefined,
    };
  }
  const registry = new TokenizerRegistry({ threads: POOL_THREADS, encoder: implementation });
  const pooled = await registry.get("Qwen/Qwen3-0.6B");
  const local = pooled.prepareSync();
  return {
    single: async (text) => local.encode(text),
    pooled: (text) => pooled.encode(text),
    inFlight: POOL_THREADS * 2,
    fresh: async () => {
      const tokenizer = new ModelTokenizer(files, implementation);
      return async (text) => tokenizer.encode(text);
    },
    close: () => registry.close(),
  };
}

function stats(tokens: number, elapsedMs: number, latencies: number[]): RunStats {
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    tokensPerSec: round((tokens / elapsedMs) * 1000, 0),
    p50Ms: round(percentile(sorted, 50), 2),
    p99Ms: round(percentile(sorted, 99), 2),
    latencies: sorted,
  };
}

/** Best of ROUNDS for throughput (least disturbed by other load); latencies pooled over all rounds. */
async function measure(
  prompts: readonly string[],
  inFlight: number,
  encode: (text: string) => Promise<Uint32Array>,
  onResult: (index: number, ids: Uint32Array) => void,
): Promise<RunStats> {
  let best = Number.POSITIVE_INFINITY;
  let tokens = 0;
  const latencies: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    let next = 0;
    let roundTokens = 0;
    const started = performance.now();
    const lane = async () => {
      while (next < prompts.length) {
        const index = next++;
        const t0 = performance.now();
        const ids = await encode(prompts[index]!);
        latencies.push(performance.now() - t0);
        roundTokens += ids.length;
        onResult(index, ids);
      }
    };
    await Promise.all(Array.from({ length: inFlight }, lane));
    const elapsed = performance.now() - started;
    if (elapsed < best) {
      best = elapsed;
      tokens = roundTokens;
    }
  }
  return stats(tokens, best, latencies);
}

/** One pass, one prompt at a time: with a freshly loaded tokenizer and unseen prompts, every cache starts empty. */
async function measureCold(
  prompts: readonly string[],
  encode: (text: string) => Promise<Uint32Array>,
  onResult: (index: number, ids: Uint32Array) => void,
): Promise<RunStats> {
  let tokens = 0;
  const latencies: number[] = [];
  const started = performance.now();
  for (const [index, text] of prompts.entries()) {
    const t0 = performance.now();
    const ids = await encode(text);
    latencies.push(performance.now() - t0);
    tokens += ids.length;
    onResult(index, ids);
  }
  return stats(tokens, performance.now() - started, latencies);
}

/**
 * Main-thread timer lateness (resolution subtracted) over a window in which `encode` keeps `inFlight`
 * 32k-token prompts going continuously; with no encoder, the idle noise floor of this machine.
 */
async function loopDelay(
  prompts: readonly string[],
  inFlight: number,
  encode?: (text: string) => Promise<Uint32Array>,
): Promise<LoopDelay> {
  const histogram = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
  histogram.enable();
  const deadline = performance.now() + ELD_WINDOW_MS;
  if (encode === undefined) await new Promise((resolve) => setTimeout(resolve, ELD_WINDOW_MS));
  else {
    const lane = async (offset: number) => {
      for (let i = offset; performance.now() < deadline; i += inFlight) await encode(prompts[i % prompts.length]!);
    };
    await Promise.all(Array.from({ length: inFlight }, (_, offset) => lane(offset)));
  }
  histogram.disable();
  const delay = (ns: number) => round(Math.max(0, ns / 1e6 - ELD_RESOLUTION_MS), 2);
  return {
    p50Ms: delay(histogram.percentile(50)),
    p99Ms: delay(histogram.percentile(99)),
    maxMs: delay(histogram.max),
  };
}

function sameIds(a: Uint32Array, b: Uint32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

async function run(ctx: BenchContext) {
  const files = await readTokenizerSource({ embedded: "qwen3" });
  const sizing = new ModelTokenizer(files);
  const native = (createRequire(import.meta.url)("@anush008/tokenizers") as typeof import("@anush008/tokenizers"))
    .Tokenizer;

  const lines = sourceLines(ctx.root);
  const sample = promptTexts(lines, 1, 50_000, 1)[0]!;
  const charsPerToken = sample.length / sizing.encode(sample).length;
  const prompts = new Map<SizeLabel, string[]>();
  /** Other prompts of the same sizes, for the cold passes. */
  const coldPrompts = new Map<SizeLabel, string[]>();
  const promptTokens = new Map<SizeLabel, number>();
  for (const [i, size] of SIZES.entries()) {
    const chars = Math.ceil(size.tokens * charsPerToken * 1.02);
    const texts = promptTexts(lines, size.prompts, chars, 100 + i);
    prompts.set(size.label, texts);
    coldPrompts.set(size.label, promptTexts(lines, size.prompts, chars, 200 + i));
    promptTokens.set(size.label, texts.reduce((sum, t) => sum + sizing.encode(t).length, 0) / texts.length);
  }

  const reference = new Map<SizeLabel, Uint32Array[]>();
  const coldReference = new Map<SizeLabel, Uint32Array[]>();
  let identical = true;
  const results = new Map<Implementation, Map<SizeLabel, SizeResult>>();
  const delays = new Map<Implementation, LoopDelay>();
  for (const implementation of IMPLEMENTATIONS) {
    ctx.progress.note(`${implementation}: loading`);
    const enc = await encoders(implementation, native, files);
    const bySize = new Map<SizeLabel, SizeResult>();
    for (const size of SIZES) {
      const texts = prompts.get(size.label)!;
      const checker = (references: Map<SizeLabel, Uint32Array[]>) => {
        const expected = references.get(size.label) ?? [];
        references.set(size.label, expected);
        return (index: number, ids: Uint32Array) => {
          if (expected[index] === undefined) expected[index] = ids;
          else if (!sameIds(expected[index]!, ids)) identical = false;
        };
      };
      const check = checker(reference);
      await measure(texts.slice(0, 4), 1, enc.single, check); // warm-up (caches, JIT)
      ctx.progress.update(`${implementation} ${size.label} single`, 0, 1);
      const single = await measure(texts, 1, enc.single, check);
      ctx.progress.update(`${implementation} ${size.label} pooled`, 0, 1);
      const pooled = await measure(texts, enc.inFlight, enc.pooled, check);
      ctx.progress.update(`${implementation} ${size.label} cold`, 0, 1);
      const cold = await measureCold(coldPrompts.get(size.label)!, await enc.fresh(), checker(coldReference));
      bySize.set(size.label, { single, pooled, cold });
    }
    ctx.progress.note(`${implementation}: event-loop delay under continuous 32k-token load`);
    delays.set(implementation, await loopDelay(prompts.get("32k")!, enc.inFlight, enc.pooled));
    await enc.close();
    results.set(implementation, bySize);
  }
  const idle = await loopDelay([], 0);
  ctx.progress.note("never-seen words: Qwen3 and Llama 3, fast path and Rust crate");
  const neverSeen = await measureNeverSeen(native, ctx.progress);
  return { results, delays, idle, promptTokens, identical, neverSeen };
}

export const bench: Bench = {
  name: "tokenizer",
  description:
    "Qwen3 tokenization of varied 1k/8k/32k-token prompts: the exact byte-level BPE fast path (chosen), tokenizers.js, " +
    "and the Rust tokenizers crate through its Node binding; one thread (warm and cold caches) and pooled, latency and " +
    "main-thread event-loop delay; Qwen3 and Llama 3 on never-seen random words against the Rust crate.",
  async run(ctx) {
    const { results, delays, idle, promptTokens, identical, neverSeen } = await run(ctx);
    const neverSeenOf = (model: string) => neverSeen.find((r) => r.model === model)!;
    const at = (implementation: Implementation, size: SizeLabel) => results.get(implementation)!.get(size)!;
    const perImplementation: Record<string, Figure> = {};
    for (const implementation of IMPLEMENTATIONS) {
      const sizes: Record<string, Figure> = {};
      for (const { label } of SIZES) {
        const r = at(implementation, label);
        sizes[label] = {
          singleTokensPerSec: r.single.tokensPerSec,
          singleP50Ms: r.single.p50Ms,
          singleP99Ms: r.single.p99Ms,
          pooledTokensPerSec: r.pooled.tokensPerSec,
          pooledP50Ms: r.pooled.p50Ms,
          pooledP99Ms: r.pooled.p99Ms,
          coldSingleTokensPerSec: r.cold.tokensPerSec,
          coldSingleP50Ms: r.cold.p50Ms,
          coldSingleP99Ms: r.cold.p99Ms,
        };
      }
      perImplementation[implementation] = { ...sizes, eventLoopDelay32k: { ...delays.get(implementation)! } };
    }
    const chosenTokensPerSec = at(CHOSEN, "8k").single.tokensPerSec;
    const nativeTokensPerSec = at("native", "8k").single.tokensPerSec;
    const chosenColdTokensPerSec = at(CHOSEN, "8k").cold.tokensPerSec;
    const nativeColdTokensPerSec = at("native", "8k").cold.tokensPerSec;
    const figures: Record<string, Figure> = {
      chosen: CHOSEN,
      chosenTokensPerSec,
      nativeTokensPerSec,
      speedupOverNative: round(chosenTokensPerSec / nativeTokensPerSec, 2),
      chosenColdTokensPerSec,
      nativeColdTokensPerSec,
      coldSpeedupOverNative: round(chosenColdTokensPerSec / nativeColdTokensPerSec, 2),
      identicalOutput: identical,
      neverSeenRatioQwen3: neverSeenOf("qwen3").ratio,
      neverSeenRatioLlama3: neverSeenOf("llama3").ratio,
      neverSeen: neverSeen.map((r) => ({ ...r })),
      eventLoopDelayP99Ms: delays.get(CHOSEN)!.p99Ms,
      idleEventLoopDelayP99Ms: idle.p99Ms,
      poolThreads: POOL_THREADS,
      meanPromptTokens: Object.fromEntries(SIZES.map(({ label }) => [label, round(promptTokens.get(label)!, 0)])),
      implementations: perImplementation,
    };

    const rows = IMPLEMENTATIONS.flatMap((implementation) =>
      SIZES.map(({ label }) => {
        const r = at(implementation, label);
        return [
          implementation,
          label,
          r.single.tokensPerSec,
          r.single.p50Ms,
          r.single.p99Ms,
          r.pooled.tokensPerSec,
          r.pooled.p50Ms,
          r.pooled.p99Ms,
          r.cold.tokensPerSec,
          r.cold.p50Ms,
          r.cold.p99Ms,
        ];
      }),
    );
    const markdown = [
      `Chosen: **${CHOSEN}** — ${chosenTokensPerSec.toLocaleString("en-US")} tokens/s on one core for 8k-token prompts, ` +
        `against ${nativeTokensPerSec.toLocaleString("en-US")} tokens/s for the Rust crate (×${figures["speedupOverNative"]}); ` +
        `with cold caches ${chosenColdTokensPerSec.toLocaleString("en-US")} against ` +
        `${nativeColdTokensPerSec.toLocaleString("en-US")} tokens/s ` +
        `(×${figures["coldSpeedupOverNative"]}); ids identical across all three implementations for every prompt: **${identical}**. ` +
        `The Rust binding pays for crossing into native code and for building a JavaScript array of ids per call; ` +
        `the fast path runs the same algorithm in JavaScript with a word cache and typed arrays. ` +
        `Pooled: ${POOL_THREADS} worker threads (native: 4 encodes in flight on the libuv pool); latencies pooled include queueing. ` +
        `Event-loop delay: lateness of a ${ELD_RESOLUTION_MS} ms main-thread timer (resolution subtracted) during ${ELD_WINDOW_MS / 1000} s of ` +
        `continuous pooled tokenization of 32k-token prompts; the idle row is the same window with nothing running in this process. ` +
        `Warm throughput is the best of ${ROUNDS} rounds over the same prompts, so from the second round on most words are ` +
        `word-cache hits (both the fast path and the Rust crate cache words). Cold: one pass, one thread, over ` +
        `${SIZES.map(({ label, prompts }) => `${prompts} ${label}`).join(", ")} ` +
        `prompts not used elsewhere, each size with a tokenizer loaded just before it (load time excluded), so its caches start empty ` +
        `and fill during the pass, as on a server that has just started or meets new text. ` +
        `The machine was shared with other work, so expect noise.`,
      "",
      markdownTable(
        [
          "implementation",
          "prompt",
          "1-thread tokens/s",
          "p50 ms",
          "p99 ms",
          "pooled tokens/s",
          "pooled p50 ms",
          "pooled p99 ms",
          "cold 1-thread tokens/s",
          "cold p50 ms",
          "cold p99 ms",
        ],
        rows,
      ),
      "",
      markdownTable(
        ["main-thread event-loop delay", "p50 ms", "p99 ms", "max ms"],
        [
          ...IMPLEMENTATIONS.map((i) => [
            `${i}, pooled 32k`,
            delays.get(i)!.p50Ms,
            delays.get(i)!.p99Ms,
            delays.get(i)!.maxMs,
          ]),
          ["idle (noise floor)", idle.p50Ms, idle.p99Ms, idle.maxMs],
        ],
      ),
      "",
      NEVER_SEEN_DESCRIPTION,
      "",
      markdownTable(
        ["never-seen words", "fast path tokens/s", "Rust crate tokens/s", "fast path ÷ Rust crate", "ids identical"],
        neverSeen.map((r) => [r.model, r.fastTokensPerSec, r.nativeTokensPerSec, r.ratio, String(r.identical)]),
      ),
      "",
      `Mean prompt sizes (Qwen3 tokens): ${SIZES.map(({ label }) => `${label} ${Math.round(promptTokens.get(label)!)}`).join(", ")}.`,
    ].join("\n");

    const charts: Chart[] = [
      {
        kind: "bar",
        title: "One thread, warm caches (best of rounds over the same prompts), tokens per second",
        unit: "tokens/s",
        bars: IMPLEMENTATIONS.flatMap((i) =>
          SIZES.map(({ label }) => ({ label: `${i} ${label}`, value: at(i, label).single.tokensPerSec })),
        ),
      },
      {
        kind: "bar",
        title: "One thread, cold caches (first pass over unseen prompts, freshly loaded tokenizer), tokens per second",
        unit: "tokens/s",
        bars: IMPLEMENTATIONS.flatMap((i) =>
          SIZES.map(({ label }) => ({ label: `${i} ${label}`, value: at(i, label).cold.tokensPerSec })),
        ),
      },
      {
        kind: "bar",
        title: "Never-seen words, one thread, freshly loaded tokenizers, tokens per second",
        unit: "tokens/s",
        bars: neverSeen.flatMap((r) => [
          { label: `byte-level-bpe ${r.model}`, value: r.fastTokensPerSec },
          { label: `native ${r.model}`, value: r.nativeTokensPerSec },
        ]),
      },
      {
        kind: "bar",
        title: "Pooled, tokens per second",
        unit: "tokens/s",
        bars: IMPLEMENTATIONS.flatMap((i) =>
          SIZES.map(({ label }) => ({ label: `${i} ${label}`, value: at(i, label).pooled.tokensPerSec })),
        ),
      },
      {
        kind: "line",
        title: "Latency CDF, 8k-token prompts, one thread",
        xLabel: "ms",
        yLabel: "fraction",
        logX: true,
        series: IMPLEMENTATIONS.map((i) => ({ name: i, points: cdfPoints(at(i, "8k").single.latencies, 50) })),
      },
      {
        kind: "bar",
        title: "Main-thread event-loop delay p99 under continuous pooled 32k-token load",
        unit: "ms",
        bars: [
          ...IMPLEMENTATIONS.map((i) => ({ label: i, value: delays.get(i)!.p99Ms })),
          { label: "idle (noise floor)", value: idle.p99Ms },
        ],
      },
    ];
    return { figures, markdown, charts };
  },
};
