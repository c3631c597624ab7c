import { cp, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DEFAULT_MODEL,
  InvalidRequest,
  ModelTokenizer,
  TokenizerLoadError,
  TokenizerRegistry,
  UnknownModel,
  embeddedModelDirectory,
  readTokenizerSource,
  type TokenizerFileTexts,
  type TokenizerRegistryOptions,
} from "../src/index.js";
import { REMEMBERED_MISSING_MODELS } from "../src/registry.js";
import { parityCorpus } from "./support/corpus.js";
import { fixtureFiles } from "./support/fixtures.js";

const chat = {
  messages: [
    { role: "system", content: "You are terse." },
    { role: "user", content: "Summarise: 你好 👋 <|im_end|> done" },
  ],
  chat_template_kwargs: { enable_thinking: false },
};

describe("TokenizerRegistry on a worker pool", () => {
  let registry: TokenizerRegistry;
  let root: string;
  let local: ModelTokenizer;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "tokenizer-registry-"));
    const modelDir = join(root, "models", "acme", "tiny-chat");
    await mkdir(modelDir, { recursive: true });
    await cp(embeddedModelDirectory("qwen3"), modelDir, { recursive: true });
    await writeFile(
      join(modelDir, "chat_template.jinja"),
      "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}",
    );
    await writeFile(join(modelDir, "generation_config.json"), '{"temperature": 0.6}');
    registry = new TokenizerRegistry({ threads: 2, modelsDirectory: join(root, "models") });
    local = new ModelTokenizer(await readTokenizerSource({ embedded: "qwen3" }));
  });

  afterAll(async () => {
    await registry.close();
    await rm(root, { recursive: true, force: true });
  });

  it("serves unknown model names with the embedded Qwen3 default", async () => {
    const tokenizer = await registry.get("some-org/unknown-model");
    expect(tokenizer.model).toBe(DEFAULT_MODEL);
    expect(tokenizer.info).toMatchObject({
      implementation: "byte-level-bpe",
      vocabSize: 151669,
      eosToken: "<|im_end|>",
    });
    expect(await registry.get("another-unknown")).toBe(tokenizer);
  });

  it("gives the same results on the pool as on the calling thread", async () => {
    const tokenizer = await registry.get("Qwen/Qwen3-0.6B");
    const pooled = await tokenizer.tokenizeRequest("chat", chat, { returnPrompt: true });
    expect(pooled).toEqual(local.tokenizeRequest("chat", chat, { returnPrompt: true }));
    expect(tokenizer.tokenizeRequestSync("chat", chat, { returnPrompt: true })).toEqual(pooled);
    expect(tokenizer.renderChat(chat)).toBe(pooled.prompt);
    const texts = parityCorpus().map((c) => c.text);
    const encoded = await Promise.all(texts.map((text) => tokenizer.encode(text)));
    encoded.forEach((ids, i) => expect(ids).toEqual(local.encode(texts[i]!)));
    expect(tokenizer.encodeSync(texts[5]!, { addSpecialTokens: true })).toEqual(encoded[5]);
  });

  it("reports bad requests from workers as InvalidRequest naming the field", async () => {
    const tokenizer = await registry.get(DEFAULT_MODEL);
    const failure = tokenizer.tokenizeRequest("chat", { messages: [{ role: "user", content: 7 }] });
    await expect(failure).rejects.toBeInstanceOf(InvalidRequest);
    await expect(failure).rejects.toMatchObject({ field: "messages[0].content" });
    await expect(tokenizer.tokenizeRequest("completions", { prompt: [1, 1 << 30] })).rejects.toThrow(
      "prompt[1]: token id 1073741824 is outside the vocabulary",
    );
  });

  it("marks multi-prompt completions as not injectable", async () => {
    const tokenizer = await registry.get(DEFAULT_MODEL);
    const batch = await tokenizer.tokenizeRequest(
      "completions",
      { prompt: ["first prompt", "second"] },
      { returnPrompt: true },
    );
    expect(batch).toEqual({ tokenIds: local.encode("first prompt"), injectable: false, prompt: "first prompt" });
    const ids = await tokenizer.tokenizeRequest("completions", { prompt: [[], [9, 8, 7]] });
    expect(ids).toEqual({ tokenIds: Uint32Array.of(9, 8, 7), injectable: false });
  });

  it("finds models under modelsDirectory, with chat_template.jinja and generation_config.json", async () => {
    const tokenizer = await registry.get("acme/tiny-chat");
    expect(tokenizer.model).toBe("acme/tiny-chat");
    expect(tokenizer.info.generationConfig).toEqual({ temperature: 0.6 });
    const result = await tokenizer.tokenizeRequest("chat", chat, { returnPrompt: true });
    expect(result.prompt).toBe("[system] You are terse.\n[user] Summarise: 你好 👋 <|im_end|> done\n");
    expect(result.tokenIds).toEqual(local.encode(result.prompt!));
    expect((await registry.get("acme/../acme/tiny-chat/../../..")).model).toBe(DEFAULT_MODEL);
    expect((await registry.get("acme/missing")).model).toBe(DEFAULT_MODEL);
  });

  it("loads registered embedded models, directories and in-memory files", async () => {
    registry.register("meta-llama/Meta-Llama-3-8B-Instruct", { embedded: "llama3" });
    const llama = await registry.get("meta-llama/Meta-Llama-3-8B-Instruct");
    expect(llama.info).toMatchObject({ bosToken: "<|begin_of_text|>", vocabSize: 128256 });
    expect((await llama.tokenizeRequest("chat", { messages: [{ role: "user", content: "Hi" }] })).tokenIds[0]).toBe(
      128000,
    );

    registry.register("from-directory", { directory: join(root, "models", "acme", "tiny-chat") });
    expect((await registry.get("from-directory")).info.generationConfig).toEqual({ temperature: 0.6 });

    const tiny = await fixtureFiles("tiny");
    const tokenizer = JSON.parse(tiny.tokenizer) as object;
    registry.register("in-memory", { files: { tokenizer, chatTemplate: "{{ messages[0].content | upper }}<|end|>" } });
    const inMemory = await registry.get("in-memory");
    expect(inMemory.info.vocabSize).toBe(302);
    const body = { messages: [{ role: "user", content: "hello" }] };
    expect(await inMemory.tokenizeRequest("chat", body, { returnPrompt: true })).toEqual({
      tokenIds: Uint32Array.of(72, 69, 76, 76, 79, 300),
      injectable: true,
      prompt: "HELLO<|end|>",
    });
  });

  it("rejects bad files with TokenizerLoadError and loads a corrected registration", async () => {
    registry.register("broken", { files: { tokenizer: '{"model": {"type": "BPE"' } });
    await expect(registry.get("broken")).rejects.toBeInstanceOf(TokenizerLoadError);
    registry.register("broken", { directory: join(root, "does-not-exist") });
    await expect(registry.get("broken")).rejects.toThrow(/tokenizer.json not found/);
    registry.register("broken", { files: await fixtureFiles("tiny") });
    expect((await registry.get("broken")).info.vocabSize).toBe(302);
  });
});

describe("TokenizerRegistry without a default model", () => {
  it("fails unknown names with UnknownModel", async () => {
    const registry = new TokenizerRegistry({ threads: 1, defaultModel: null });
    try {
      await expect(registry.get("nobody/knows")).rejects.toBeInstanceOf(UnknownModel);
    } finally {
      await registry.close();
    }
  });
});

describe("TokenizerRegistry lookups under modelsDirectory", () => {
  let root: string;
  let tiny: TokenizerFileTexts;
  const registries: TokenizerRegistry[] = [];

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "tokenizer-lookups-"));
    tiny = await fixtureFiles("tiny");
  });

  afterAll(async () => {
    await Promise.all(registries.map((registry) => registry.close()));
    await rm(root, { recursive: true, force: true });
  });

  const open = (options: TokenizerRegistryOptions = {}) => {
    const registry = new TokenizerRegistry({
      threads: 1,
      loadInEveryWorker: false,
      defaultModel: { files: tiny },
      modelsDirectory: root,
      ...options,
    });
    registries.push(registry);
    return registry;
  };
  const addModel = async (model: string) => {
    const directory = join(root, ...model.split("/"));
    await mkdir(directory, { recursive: true });
    await writeFile(join(directory, "tokenizer.json"), tiny.tokenizer);
  };
  const resolved = async (registry: TokenizerRegistry, model: string) => (await registry.get(model)).model;

  it("serves a missing name with the default until the recheck interval has passed, then finds its directory", async () => {
    const remembering = open({ missingModelRecheckMs: 60_000 });
    const rechecking = open({ missingModelRecheckMs: 300 });
    expect(await resolved(remembering, "late/model")).toBe(DEFAULT_MODEL);
    expect(await resolved(rechecking, "late/model")).toBe(DEFAULT_MODEL);
    await addModel("late/model");
    expect(await resolved(remembering, "late/model")).toBe(DEFAULT_MODEL);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await resolved(rechecking, "late/model")).toBe("late/model");
    expect(await resolved(remembering, "late/model")).toBe(DEFAULT_MODEL);

    remembering.register("late/model", { files: tiny });
    expect(await resolved(remembering, "late/model")).toBe("late/model");
  });

  it("remembers a bounded number of missing names, forgetting the least recently requested", async () => {
    const registry = open({ missingModelRecheckMs: 60_000 });
    expect(await resolved(registry, "lru/first")).toBe(DEFAULT_MODEL);
    expect(await resolved(registry, "lru/second")).toBe(DEFAULT_MODEL);
    for (let i = 0; i < REMEMBERED_MISSING_MODELS - 2; i++) await registry.get(`lru/filler-${i}`);
    expect(await resolved(registry, "lru/first")).toBe(DEFAULT_MODEL); // requested again: now the most recent
    expect(await resolved(registry, "lru/one-more")).toBe(DEFAULT_MODEL); // one over the bound: lru/second forgotten
    await addModel("lru/first");
    await addModel("lru/second");
    expect(await resolved(registry, "lru/second")).toBe("lru/second");
    expect(await resolved(registry, "lru/first")).toBe(DEFAULT_MODEL);
  });

  it("looks up only plain names, so one directory is one model whatever the spelling", async () => {
    await addModel("spelling/model");
    const registry = open();
    const found = await registry.get("spelling/model");
    expect(found.model).toBe("spelling/model");
    for (const alias of [
      "spelling//model",
      "spelling/./model",
      "./spelling/model",
      "spelling/model/",
      "/spelling/model",
      "spelling\\model",
    ]) {
      expect(await resolved(registry, alias)).toBe(DEFAULT_MODEL);
    }
    expect(await registry.get("spelling/model")).toBe(found);
  });
});
