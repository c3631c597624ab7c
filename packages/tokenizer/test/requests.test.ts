import { describe, expect, it } from "vitest";
import { InvalidRequest, parseChatRequest, parseCompletionsRequest } from "../src/index.js";

function invalidField(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidRequest);
    const { field, message } = error as InvalidRequest;
    expect(message.startsWith(`${field}: `)).toBe(true);
    return field;
  }
  throw new Error("expected InvalidRequest");
}

const user = { role: "user", content: "hi" };

describe("parseChatRequest", () => {
  it("applies the engine's defaults", () => {
    const request = parseChatRequest({ messages: [user] }, "string");
    expect(request).toEqual({
      messages: [{ role: "user", content: "hi" }],
      addGenerationPrompt: true,
      continueFinalMessage: false,
      templateKwargs: {},
      addSpecialTokens: false,
    });
  });

  it("normalises messages: null content, text parts, tool-call arguments, reasoning, names", () => {
    const request = parseChatRequest(
      {
        messages: [
          { role: "user", content: [{ type: "text", text: "a" }, "b"], name: "ann", extra: 1 },
          {
            role: "assistant",
            content: null,
            reasoning: "think",
            tool_calls: [
              { id: "1", type: "function", function: { name: "f", arguments: '{"x": [1, 2]}' } },
              { id: "2", type: "function", function: { name: "g", arguments: "" } },
            ],
          },
          { role: "assistant", content: "done", tool_calls: [] },
          { role: "tool", content: "42", tool_call_id: "1" },
        ],
      },
      "string",
    );
    expect(request.messages).toEqual([
      { role: "user", content: "a\nb", name: "ann" },
      {
        role: "assistant",
        content: "",
        reasoning: "think",
        reasoning_content: "think",
        tool_calls: [
          { id: "1", type: "function", function: { name: "f", arguments: { x: [1, 2] } } },
          { id: "2", type: "function", function: { name: "g", arguments: {} } },
        ],
      },
      { role: "assistant", content: "done" },
      { role: "tool", content: "42", tool_call_id: "1" },
    ]);
  });

  it("keeps content parts for templates that loop over them", () => {
    const request = parseChatRequest({ messages: [user, { role: "user", content: null }] }, "openai");
    expect(request.messages).toEqual([
      { role: "user", content: [{ type: "text", text: "hi" }] },
      { role: "user", content: [] },
    ]);
  });

  it("dumps tools with declared fields first and absent ones as null", () => {
    const request = parseChatRequest(
      {
        messages: [user],
        tools: [{ function: { parameters: { type: "object" }, strict: true, name: "f" }, type: "function" }],
      },
      "string",
    );
    expect(JSON.stringify(request.tools)).toBe(
      '[{"type":"function","function":{"name":"f","description":null,"parameters":{"type":"object"},"strict":true}}]',
    );
  });

  it("carries template kwargs, documents, flags and truncation", () => {
    const request = parseChatRequest(
      {
        messages: [user],
        chat_template_kwargs: { enable_thinking: false },
        documents: [{ title: "t", text: "x" }],
        add_generation_prompt: false,
        continue_final_message: true,
        add_special_tokens: true,
        truncate_prompt_tokens: 100,
      },
      "string",
    );
    expect(request).toMatchObject({
      templateKwargs: { enable_thinking: false },
      documents: [{ title: "t", text: "x" }],
      addGenerationPrompt: false,
      continueFinalMessage: true,
      addSpecialTokens: true,
      truncatePromptTokens: 100,
    });
  });

  it.each([
    ["body", null],
    ["body", [user]],
    ["messages", {}],
    ["messages", { messages: [] }],
    ["messages", { messages: "hi" }],
    ["messages[1]", { messages: [user, "hi"] }],
    ["messages[0].role", { messages: [{ content: "hi" }] }],
    ["messages[0].content", { messages: [{ role: "user", content: 42 }] }],
    [
      "messages[0].content[1].type",
      { messages: [{ role: "user", content: ["a", { type: "image_url", image_url: {} }] }] },
    ],
    ["messages[0].content[0].text", { messages: [{ role: "user", content: [{ type: "text" }] }] }],
    ["messages[0].tool_calls", { messages: [{ role: "assistant", tool_calls: {} }] }],
    ["messages[0].tool_calls[0].function", { messages: [{ role: "assistant", tool_calls: [{ id: "1" }] }] }],
    ["messages[0].tool_calls[0].function.name", { messages: [{ role: "assistant", tool_calls: [{ function: {} }] }] }],
    [
      "messages[0].tool_calls[0].function.arguments",
      { messages: [{ role: "assistant", tool_calls: [{ function: { name: "f", arguments: "{oops" } }] }] },
    ],
    ["messages[0].reasoning_content", { messages: [{ role: "assistant", content: "", reasoning_content: 3 }] }],
    ["tools", { messages: [user], tools: {} }],
    ["tools[0]", { messages: [user], tools: ["f"] }],
    ["tools[0].type", { messages: [user], tools: [{ type: "retrieval", function: { name: "f" } }] }],
    ["tools[0].function", { messages: [user], tools: [{ type: "function" }] }],
    ["tools[0].function.name", { messages: [user], tools: [{ type: "function", function: { description: "d" } }] }],
    ["tools[0].function.description", { messages: [user], tools: [{ function: { name: "f", description: 1 } }] }],
    ["tools[0].function.parameters", { messages: [user], tools: [{ function: { name: "f", parameters: [] } }] }],
    ["chat_template_kwargs", { messages: [user], chat_template_kwargs: "x" }],
    ["chat_template_kwargs.messages", { messages: [user], chat_template_kwargs: { messages: [] } }],
    ["chat_template", { messages: [user], chat_template: "{{ 1 }}" }],
    ["add_generation_prompt", { messages: [user], add_generation_prompt: "yes" }],
    ["continue_final_message", { messages: [user], continue_final_message: true }],
    ["truncate_prompt_tokens", { messages: [user], truncate_prompt_tokens: 0 }],
  ])("rejects a bad %s", (field, body) => {
    expect(invalidField(() => parseChatRequest(body, "string"))).toBe(field);
  });
});

describe("parseCompletionsRequest", () => {
  const VOCAB = 1000;

  it("takes a text prompt, adding special tokens by default", () => {
    expect(parseCompletionsRequest({ prompt: "hello" }, VOCAB)).toEqual({
      kind: "text",
      text: "hello",
      addSpecialTokens: true,
      injectable: true,
    });
    expect(parseCompletionsRequest({ prompt: "hello", add_special_tokens: false }, VOCAB)).toMatchObject({
      addSpecialTokens: false,
    });
  });

  it("takes token ids as they are", () => {
    const prompt = parseCompletionsRequest({ prompt: [1, 2, 999] }, VOCAB);
    expect(prompt.kind).toBe("token-ids");
    expect(prompt.kind === "token-ids" && Array.from(prompt.ids)).toEqual([1, 2, 999]);
    expect(prompt.injectable).toBe(true);
  });

  it("routes a batch of id lists on the first non-empty one and marks it not injectable", () => {
    const prompt = parseCompletionsRequest({ prompt: [[], [5, 6], [7]] }, VOCAB);
    expect(prompt.kind === "token-ids" && Array.from(prompt.ids)).toEqual([5, 6]);
    expect(prompt.injectable).toBe(false);
    expect(parseCompletionsRequest({ prompt: [[5, 6]] }, VOCAB).injectable).toBe(true);
  });

  it("routes a batch of texts on the first and marks it not injectable", () => {
    expect(parseCompletionsRequest({ prompt: ["first", "second"] }, VOCAB)).toMatchObject({
      kind: "text",
      text: "first",
      injectable: false,
    });
    expect(parseCompletionsRequest({ prompt: ["only"] }, VOCAB).injectable).toBe(true);
  });

  it.each([
    ["body", "hello"],
    ["prompt", {}],
    ["prompt", { prompt: 42 }],
    ["prompt", { prompt: "" }],
    ["prompt", { prompt: [] }],
    ["prompt[1]", { prompt: [1, -2] }],
    ["prompt[0]", { prompt: [1.5] }],
    ["prompt[1]", { prompt: [1, VOCAB] }],
    ["prompt[0]", { prompt: ["", "x"] }],
    ["prompt[1]", { prompt: ["a", 3] }],
    ["prompt[1]", { prompt: [[1], "x"] }],
    ["prompt", { prompt: [[], []] }],
    ["prompt[1][0]", { prompt: [[], ["x"]] }],
    ["add_special_tokens", { prompt: "x", add_special_tokens: 1 }],
    ["truncate_prompt_tokens", { prompt: "x", truncate_prompt_tokens: 2.5 }],
  ])("rejects a bad %s", (field, body) => {
    expect(invalidField(() => parseCompletionsRequest(body, VOCAB))).toBe(field);
  });
});
