import { beforeAll, describe, expect, it } from "vitest";
import { InvalidRequest, ModelTokenizer, type TokenizerFileTexts } from "../src/index.js";
import { Reference, fixtureFiles } from "./support/fixtures.js";

const WEATHER_TOOL = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Current weather for a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};

const callWeather = (id: string, city: string, args = JSON.stringify({ city })) => ({
  id,
  type: "function",
  function: { name: "get_weather", arguments: args },
});

const QWEN_TOOLS_PREAMBLE =
  "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n" +
  "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n" +
  '{"type": "function", "function": {"name": "get_weather", "description": "Current weather for a city", ' +
  '"parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}\n</tools>\n\n' +
  "For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n" +
  '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n';

describe("Qwen3 chat template", () => {
  let qwen: ModelTokenizer;
  let reference: Reference;

  beforeAll(async () => {
    const files = await fixtureFiles("qwen3");
    qwen = new ModelTokenizer(files);
    reference = Reference.fromFiles(files);
  });

  it("renders a user turn with the generation prompt by default", () => {
    expect(qwen.renderChat({ messages: [{ role: "user", content: "What is 2+2?" }] })).toBe(
      "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    );
  });

  it("closes an empty think block when enable_thinking is false", () => {
    const body = {
      messages: [{ role: "user", content: "What is 2+2?" }],
      chat_template_kwargs: { enable_thinking: false },
    };
    expect(qwen.renderChat(body)).toBe(
      "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
    );
  });

  it("omits the assistant header without add_generation_prompt", () => {
    const body = {
      messages: [
        { role: "system", content: "You are terse." },
        { role: "user", content: "Hi" },
      ],
      add_generation_prompt: false,
    };
    expect(qwen.renderChat(body)).toBe(
      "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
    );
  });

  it("drops earlier turns' reasoning in a multi-turn conversation", () => {
    const body = {
      messages: [
        { role: "system", content: "You are terse." },
        { role: "user", content: "Hi" },
        { role: "assistant", content: "<think>\nGreeting.\n</think>\n\nHello!" },
        { role: "user", content: "Bye" },
      ],
    };
    expect(qwen.renderChat(body)).toBe(
      "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n" +
        "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n",
    );
  });

  it("renders tool definitions, parallel tool calls and grouped tool responses", () => {
    const body = {
      messages: [
        { role: "system", content: "You are a weather bot." },
        { role: "user", content: "Weather in Paris and Rome?" },
        {
          role: "assistant",
          content: null,
          tool_calls: [callWeather("c1", "Paris", '{"city": "Paris"}'), callWeather("c2", "Rome")],
        },
        { role: "tool", tool_call_id: "c1", content: '{"temp": 21}' },
        { role: "tool", tool_call_id: "c2", content: '{"temp": 24}' },
      ],
      tools: [WEATHER_TOOL],
    };
    expect(qwen.renderChat(body)).toBe(
      "<|im_start|>system\nYou are a weather bot.\n\n" +
        QWEN_TOOLS_PREAMBLE +
        "<|im_start|>user\nWeather in Paris and Rome?<|im_end|>\n" +
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n' +
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call><|im_end|>\n' +
        '<|im_start|>user\n<tool_response>\n{"temp": 21}\n</tool_response>\n<tool_response>\n{"temp": 24}\n</tool_response><|im_end|>\n' +
        "<|im_start|>assistant\n",
    );
  });

  it("keeps the reasoning of the final answer after a tool call", () => {
    const body = {
      messages: [
        { role: "user", content: "Weather in Paris?" },
        { role: "assistant", content: "", tool_calls: [callWeather("c1", "Paris")] },
        { role: "tool", tool_call_id: "c1", content: '{"temp": 21}' },
        { role: "assistant", content: "It is 21 °C.", reasoning_content: "The tool said 21." },
      ],
      add_generation_prompt: false,
    };
    expect(qwen.renderChat(body)).toBe(
      "<|im_start|>user\nWeather in Paris?<|im_end|>\n" +
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n' +
        '<|im_start|>user\n<tool_response>\n{"temp": 21}\n</tool_response><|im_end|>\n' +
        "<|im_start|>assistant\n<think>\nThe tool said 21.\n</think>\n\nIt is 21 °C.<|im_end|>\n",
    );
  });

  it("renders a tool without description or parameters as the engine dumps it (nulls)", () => {
    const body = {
      messages: [{ role: "user", content: "now?" }],
      tools: [{ type: "function", function: { name: "clock" } }],
    };
    expect(qwen.renderChat(body)).toContain(
      '{"type": "function", "function": {"name": "clock", "description": null, "parameters": null}}',
    );
  });

  it("joins text content parts with newlines", () => {
    const body = {
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "Part one." },
            { type: "text", text: "Part two." },
          ],
        },
      ],
    };
    expect(qwen.renderChat(body)).toBe("<|im_start|>user\nPart one.\nPart two.<|im_end|>\n<|im_start|>assistant\n");
  });

  it("continues the final assistant message", () => {
    const body = {
      messages: [
        { role: "user", content: "Write a haiku" },
        { role: "assistant", content: "Autumn moon" },
      ],
      add_generation_prompt: false,
      continue_final_message: true,
    };
    expect(qwen.renderChat(body)).toBe(
      "<|im_start|>user\nWrite a haiku<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nAutumn moon",
    );
  });

  it("tokenizes the rendered prompt without adding special tokens", async () => {
    const body = { messages: [{ role: "user", content: "Weather in Paris?" }], tools: [WEATHER_TOOL] };
    const result = qwen.tokenizeRequest("chat", body, { returnPrompt: true });
    expect(result.prompt).toBe(qwen.renderChat(body));
    expect(Array.from(result.tokenIds)).toEqual(await reference.encode(result.prompt!, false));
    expect(result.tokenIds[0]).toBe(151644); // <|im_start|>
    expect(result.injectable).toBe(true);
  });
});

describe("Llama 3 chat template (the packaged revision: no tool syntax, always the assistant header)", () => {
  let llama: ModelTokenizer;
  let llamaBos: ModelTokenizer;
  let reference: Reference;

  beforeAll(async () => {
    llama = new ModelTokenizer(await fixtureFiles("llama3"));
    const bosFiles = await fixtureFiles("llama3-bos");
    llamaBos = new ModelTokenizer(bosFiles);
    reference = Reference.fromFiles(bosFiles);
  });

  const conversation = [
    { role: "system", content: "You are terse." },
    { role: "user", content: "  Hi  \n" },
    { role: "assistant", content: "Hello!" },
    { role: "user", content: "Bye" },
  ];
  const rendered =
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>" +
    "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>" +
    "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>" +
    "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>" +
    "<|start_header_id|>assistant<|end_header_id|>\n\n";

  it("renders system and multi-turn messages with trimmed content and one BOS", () => {
    expect(llama.renderChat({ messages: conversation })).toBe(rendered);
  });

  it("ends with the assistant header whatever add_generation_prompt says (this template revision)", () => {
    expect(llama.renderChat({ messages: conversation, add_generation_prompt: false })).toBe(rendered);
  });

  it("renders tool calls and tool results as plain turns (the template has no tool syntax)", () => {
    const body = {
      messages: [
        { role: "user", content: "Weather in Paris?" },
        { role: "assistant", content: null, tool_calls: [callWeather("c1", "Paris")] },
        { role: "tool", tool_call_id: "c1", content: '{"temp": 21}' },
      ],
      tools: [WEATHER_TOOL],
    };
    expect(llama.renderChat(body)).toBe(
      "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWeather in Paris?<|eot_id|>" +
        "<|start_header_id|>assistant<|end_header_id|>\n\n<|eot_id|>" +
        '<|start_header_id|>tool<|end_header_id|>\n\n{"temp": 21}<|eot_id|>' +
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    );
  });

  it("does not add the post-processor's BOS on top of the template's", async () => {
    const result = llamaBos.tokenizeRequest("chat", { messages: conversation }, { returnPrompt: true });
    expect(result.tokenIds[0]).toBe(128000);
    expect(result.tokenIds[1]).toBe(128006); // <|start_header_id|>, not a second BOS
    expect(Array.from(result.tokenIds)).toEqual(await reference.encode(rendered, false));
  });

  it("adds the BOS to text completions, as the engine does by default", async () => {
    const result = llamaBos.tokenizeRequest("completions", { prompt: "Once upon a time" });
    expect(result.tokenIds[0]).toBe(128000);
    expect(Array.from(result.tokenIds)).toEqual(await reference.encode("Once upon a time", true));
    const without = llamaBos.tokenizeRequest("completions", { prompt: "Once upon a time", add_special_tokens: false });
    expect(Array.from(without.tokenIds)).toEqual(Array.from(result.tokenIds.subarray(1)));
  });
});

describe("Llama 3.1 chat template (documented prompt format, in memory with the Llama 3 tokenizer)", () => {
  let llama: ModelTokenizer;
  let reference: Reference;

  beforeAll(async () => {
    const files = await fixtureFiles("llama3.1");
    llama = new ModelTokenizer(files);
    reference = Reference.fromFiles(files);
  });

  const kwargs = { date_string: "26 Jul 2024" };
  const header = (role: string) => `<|start_header_id|>${role}<|end_header_id|>\n\n`;
  const systemTurn = (lines: string, text: string) =>
    "<|begin_of_text|>" +
    header("system") +
    lines +
    "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n" +
    text +
    "<|eot_id|>";
  const CALL_FORMAT =
    'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}. Do not use variables.\n\n';
  const WEATHER_TOOL_JSON = [
    "{",
    '    "type": "function",',
    '    "function": {',
    '        "name": "get_weather",',
    '        "description": "Current weather for a city",',
    '        "parameters": {',
    '            "type": "object",',
    '            "properties": {',
    '                "city": {',
    '                    "type": "string"',
    "                }",
    "            },",
    '            "required": [',
    '                "city"',
    "            ]",
    "        }",
    "    }",
    "}",
  ].join("\n");
  const weatherExchange = [
    { role: "system", content: "You are a weather bot." },
    { role: "user", content: "Weather in Paris?" },
    { role: "assistant", content: null, tool_calls: [callWeather("c1", "Paris")] },
    { role: "tool", tool_call_id: "c1", content: '{"temp": 21}' },
  ];
  const weatherCallAndResult =
    header("assistant") +
    '{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>' +
    header("ipython") +
    '{"temp": 21}<|eot_id|>';

  const conversation = [
    { role: "system", content: "You are terse." },
    { role: "user", content: "  Hi  \n" },
    { role: "assistant", content: "Hello!" },
    { role: "user", content: "Bye" },
  ];
  const conversationTurns =
    systemTurn("", "You are terse.") +
    header("user") +
    "Hi<|eot_id|>" +
    header("assistant") +
    "Hello!<|eot_id|>" +
    header("user") +
    "Bye<|eot_id|>";

  it("ends with the assistant header only when add_generation_prompt is on", () => {
    expect(llama.renderChat({ messages: conversation, chat_template_kwargs: kwargs })).toBe(
      conversationTurns + header("assistant"),
    );
    expect(
      llama.renderChat({ messages: conversation, chat_template_kwargs: kwargs, add_generation_prompt: false }),
    ).toBe(conversationTurns);
  });

  it("opens with a system turn carrying the dates even without a system message", () => {
    const body = { messages: [{ role: "user", content: "Hi" }] };
    expect(llama.renderChat({ ...body, chat_template_kwargs: kwargs })).toBe(
      systemTurn("", "") + header("user") + "Hi<|eot_id|>" + header("assistant"),
    );
    const day = (date: Date) =>
      `${String(date.getDate()).padStart(2, "0")} ${date.toLocaleString("en-US", { month: "long" })} ${date.getFullYear()}`;
    const before = day(new Date());
    const rendered = llama.renderChat(body);
    const after = day(new Date());
    expect([before, after].map((today) => rendered.includes(`\nToday Date: ${today}\n\n<|eot_id|>`))).toContain(true);
  });

  it("puts custom tools as JSON in the first user turn and renders the call and the ipython result", () => {
    const body = { messages: weatherExchange, tools: [WEATHER_TOOL], chat_template_kwargs: kwargs };
    expect(llama.renderChat(body)).toBe(
      systemTurn("Environment: ipython\n", "You are a weather bot.") +
        header("user") +
        "Given the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.\n\n" +
        CALL_FORMAT +
        WEATHER_TOOL_JSON +
        "\n\nWeather in Paris?<|eot_id|>" +
        weatherCallAndResult +
        header("assistant"),
    );
  });

  it("puts custom tools in the system turn when tools_in_user_message is false", () => {
    const answered = [...weatherExchange, { role: "assistant", content: "It is 21 °C in Paris." }];
    const body = {
      messages: answered,
      tools: [WEATHER_TOOL],
      chat_template_kwargs: { ...kwargs, tools_in_user_message: false },
      add_generation_prompt: false,
    };
    expect(llama.renderChat(body)).toBe(
      systemTurn(
        "Environment: ipython\n",
        "You have access to the following functions. To call a function, please respond with JSON for a function call. " +
          CALL_FORMAT +
          WEATHER_TOOL_JSON +
          "\n\nYou are a weather bot.",
      ) +
        header("user") +
        "Weather in Paris?<|eot_id|>" +
        weatherCallAndResult +
        header("assistant") +
        "It is 21 °C in Paris.<|eot_id|>",
    );
  });

  const goldSearch = {
    messages: [
      { role: "system", content: "You are a helpful assistant." },
      { role: "user", content: "Search the web for the latest price of 1oz gold?" },
      {
        role: "assistant",
        content: "",
        tool_calls: [
          {
            id: "s1",
            type: "function",
            function: { name: "brave_search", arguments: '{"query": "latest price of 1oz gold"}' },
          },
        ],
      },
      { role: "tool", tool_call_id: "s1", content: '{"price": "2650 USD"}' },
    ],
    chat_template_kwargs: { ...kwargs, builtin_tools: ["brave_search", "wolfram_alpha"] },
  };
  const goldSearchRendered =
    systemTurn("Environment: ipython\nTools: brave_search, wolfram_alpha\n", "You are a helpful assistant.") +
    header("user") +
    "Search the web for the latest price of 1oz gold?<|eot_id|>" +
    header("assistant") +
    '<|python_tag|>brave_search.call(query="latest price of 1oz gold")<|eom_id|>' +
    header("ipython") +
    '{"price": "2650 USD"}<|eot_id|>' +
    header("assistant");

  it("names built-in tools on the Tools line and renders their calls after <|python_tag|>, ending with <|eom_id|>", () => {
    expect(llama.renderChat(goldSearch)).toBe(goldSearchRendered);
  });

  it("renders a code_interpreter call as the code itself, the tool implied by the environment line", () => {
    const body = {
      messages: [
        { role: "user", content: "Is 7 odd?" },
        {
          role: "assistant",
          content: "",
          tool_calls: [
            { type: "function", function: { name: "code_interpreter", arguments: { code: "print(7 % 2)" } } },
          ],
        },
        { role: "ipython", content: "1" },
      ],
      chat_template_kwargs: { ...kwargs, builtin_tools: ["code_interpreter"] },
      add_generation_prompt: false,
    };
    expect(llama.renderChat(body)).toBe(
      systemTurn("Environment: ipython\n", "") +
        header("user") +
        "Is 7 odd?<|eot_id|>" +
        header("assistant") +
        "<|python_tag|>print(7 % 2)<|eom_id|>" +
        header("ipython") +
        "1<|eot_id|>",
    );
  });

  it("tokenizes the special tokens as single ids with one BOS, as the Rust crate does", async () => {
    const result = llama.tokenizeRequest("chat", goldSearch, { returnPrompt: true });
    expect(result.prompt).toBe(goldSearchRendered);
    const ids = Array.from(result.tokenIds);
    expect(ids).toEqual(await reference.encode(goldSearchRendered, false));
    expect(ids.slice(0, 2)).toEqual([128000, 128006]); // <|begin_of_text|><|start_header_id|>
    expect(ids.filter((id) => id === 128000)).toHaveLength(1);
    expect(ids.filter((id) => id === 128010)).toHaveLength(1); // <|python_tag|>
    expect(ids.filter((id) => id === 128008)).toHaveLength(1); // <|eom_id|>
    expect(ids.slice(-4)).toEqual([128006, 78191, 128007, 271]); // <|start_header_id|>assistant<|end_header_id|>\n\n
    const doubled = llama.tokenizeRequest("chat", { ...goldSearch, add_special_tokens: true });
    expect(Array.from(doubled.tokenIds)).toEqual([128000, ...ids]);
  });

  it("rejects what the format cannot express", () => {
    const twoCalls = {
      messages: [
        { role: "user", content: "Paris and Rome?" },
        { role: "assistant", content: null, tool_calls: [callWeather("c1", "Paris"), callWeather("c2", "Rome")] },
      ],
    };
    expect(() => llama.renderChat(twoCalls)).toThrow(InvalidRequest);
    expect(() => llama.renderChat(twoCalls)).toThrow(/one tool call per assistant turn/);
    const noUserTurn = { messages: [{ role: "system", content: "Be brief." }], tools: [WEATHER_TOOL] };
    expect(() => llama.renderChat(noUserTurn)).toThrow(/custom tools go into the first user message/);
  });
});

describe("templates from in-memory files", () => {
  let base: TokenizerFileTexts;

  beforeAll(async () => {
    base = await fixtureFiles("tiny");
  });

  const hello = { messages: [{ role: "user", content: "hello" }] };

  it("reports a model without a chat template as an invalid chat request", () => {
    const tokenizer = new ModelTokenizer(base);
    expect(tokenizer.info.hasChatTemplate).toBe(false);
    expect(() => tokenizer.renderChat(hello)).toThrow(new InvalidRequest("messages", "the model has no chat template"));
    expect(Array.from(tokenizer.tokenizeRequest("completions", { prompt: "hello" }).tokenIds)).toEqual([259]); // h·e, l·l, he·ll, hell·o
  });

  it("prefers chat_template.jinja over tokenizer_config.json", () => {
    const config = { ...(JSON.parse(base.tokenizerConfig!) as object), chat_template: "config" };
    const tokenizer = new ModelTokenizer({
      ...base,
      tokenizerConfig: JSON.stringify(config),
      chatTemplate: "jinja:{{ messages[0].content }}",
    });
    expect(tokenizer.renderChat(hello)).toBe("jinja:hello");
  });

  it("uses the tool_use template when the request has tools", () => {
    const config = {
      ...(JSON.parse(base.tokenizerConfig!) as object),
      chat_template: [
        { name: "default", template: "plain:{{ messages[0].content }}" },
        { name: "tool_use", template: "tools:{{ tools[0].function.name }}" },
      ],
    };
    const tokenizer = new ModelTokenizer({ ...base, tokenizerConfig: JSON.stringify(config) });
    expect(tokenizer.renderChat(hello)).toBe("plain:hello");
    expect(tokenizer.renderChat({ ...hello, tools: [WEATHER_TOOL] })).toBe("tools:get_weather");
  });

  it("hands content parts to templates that iterate over them", () => {
    const template =
      "{% for m in messages %}{% for part in m.content %}[{{ part.type }}:{{ part.text }}]{% endfor %}{% endfor %}";
    const tokenizer = new ModelTokenizer({ ...base, chatTemplate: template });
    expect(
      tokenizer.renderChat({
        messages: [
          { role: "user", content: "a" },
          { role: "user", content: [{ type: "text", text: "b" }] },
        ],
      }),
    ).toBe("[text:a][text:b]");
  });

  it("turns template exceptions and syntax errors into InvalidRequest", () => {
    const raising = new ModelTokenizer({ ...base, chatTemplate: "{{ raise_exception('roles must alternate') }}" });
    expect(() => raising.renderChat(hello)).toThrow(InvalidRequest);
    expect(() => raising.renderChat(hello)).toThrow(/^messages: chat template failed: .*roles must alternate/);
    const broken = new ModelTokenizer({ ...base, chatTemplate: "{% if %}" });
    expect(() => broken.renderChat(hello)).toThrow(/^messages: chat template does not compile/);
  });

  it("exposes generation_config.json", () => {
    const tokenizer = new ModelTokenizer({ ...base, generationConfig: '{"eos_token_id": [300]}' });
    expect(tokenizer.info.generationConfig).toEqual({ eos_token_id: [300] });
  });
});
