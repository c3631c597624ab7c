import { beforeAll, describe, expect, it } from "vitest";
import { InvalidRequest, ModelTokenizer, TokenizerLoadError } from "../src/index.js";
import {
  LoadedModels,
  deserializeError,
  shareFileTexts,
  unshareFileTexts,
  type PoolReply,
  type WireModel,
} from "../src/pool-protocol.js";
import { fixtureFiles } from "./support/fixtures.js";

describe("worker-side task handling", () => {
  let model: (key: string) => WireModel;

  beforeAll(async () => {
    const files = shareFileTexts(await fixtureFiles("tiny"));
    model = (key) => ({ key, files, encoder: "auto" });
  });

  it("moves model files through shared memory unchanged", async () => {
    const files = {
      ...(await fixtureFiles("tiny")),
      chatTemplate: "{{ messages[0].content }} ✓",
      generationConfig: "{}",
    };
    expect(unshareFileTexts(shareFileTexts(files))).toEqual(files);
  });

  it("keeps at most `capacity` models, dropping the least recently used", () => {
    const loads: string[] = [];
    const models = new LoadedModels(2, (wire) => {
      loads.push(wire.key);
      return new ModelTokenizer(unshareFileTexts(wire.files));
    });
    for (const key of ["a", "b", "a", "c", "a", "b"]) {
      expect(models.run({ op: "encode", model: model(key), text: "hello", addSpecialTokens: false })).toEqual({
        ok: true,
        value: Uint32Array.of(259),
      });
    }
    expect(loads).toEqual(["a", "b", "c", "b"]);
  });

  it("answers failures as data that turns back into the typed errors", () => {
    const models = new LoadedModels(1);
    const invalid = models.run({
      op: "tokenize",
      model: model("a"),
      kind: "chat",
      body: { messages: [] },
      returnPrompt: false,
    });
    expect(invalid).toEqual({
      ok: false,
      error: { name: "InvalidRequest", field: "messages", reason: "must not be empty" },
    });
    const broken = { key: "broken", files: shareFileTexts({ tokenizer: "{" }), encoder: "auto" } as const;
    const load = models.run({ op: "load", model: broken });
    expect(load.ok).toBe(false);
    const errors = [invalid, load].map((reply: PoolReply) => (reply.ok ? null : deserializeError(reply.error)));
    expect(errors[0]).toEqual(new InvalidRequest("messages", "must not be empty"));
    expect(errors[1]).toBeInstanceOf(TokenizerLoadError);
  });
});
