import { seededRng } from "@dynamo/primitives";

/**
 * A deterministic parity corpus: text that stresses every stage of a byte-level BPE tokenizer
 * (added-token splitting, normalisation, the split regex, byte mapping, merges).
 */

export interface CorpusCase {
  readonly name: string;
  readonly text: string;
}

const WORDS = (
  "the of and to in is was for on that with as by at from his her it an were are which this be or " +
  "had not but also have their one its after new first two has they who been been more other into " +
  "router worker cache prefix token block hash request latency throughput gateway endpoint picker " +
  "Kubernetes inference scheduling memory eviction don't won't I'M we'LL it's they're you've she'd " +
  "naïve café résumé coöperate façade jalapeño Straße übermäßig"
).split(" ");

const CODE = [
  "export function add(a: number, b: number): number {\n  return a + b; // sum\n}\n",
  "def fib(n):\n\tif n < 2:\n\t\treturn n\n\treturn fib(n - 1) + fib(n - 2)\n",
  '{"model": "Qwen/Qwen3-0.6B", "messages": [{"role": "user", "content": "hi"}], "stream": true}',
  "<div class=\"card\">\r\n  <a href='https://example.com/a?b=1&c=2'>link</a>\r\n</div>\r\n",
  "for (let i = 0; i < n; i++) { sum += arr[i] ** 2; } /* comment */ x => x !== null && x?.y ?? 0;",
  "SELECT id, name FROM users WHERE age >= 21 AND name LIKE '%ann%' ORDER BY id DESC;",
  '#include <stdio.h>\nint main(void) { printf("%d\\n", 42); return 0; }\n',
  '    if err != nil {\n        return fmt.Errorf("wrap: %w", err)\n    }\n',
];

const SCRIPTS = [
  "Привет, как дела? Всё хорошо.",
  "Καλημέρα κόσμε, ΣΊΣΥΦΟΣ",
  "مرحبا بالعالم، كيف حالك؟ ١٢٣٤",
  "שלום עולם, מה שלומך?",
  "नमस्ते दुनिया ३४५ हिन्दी",
  "สวัสดีชาวโลก ภาษาไทย",
  "გამარჯობა Բարեւ Ձեզ",
  "你好，世界！今天天气很好。",
  "日本語のテキスト、カタカナとひらがな。漢字も。",
  "한국어 텍스트입니다. 안녕하세요!",
  "İstanbul ıstakoz ǅemal ﬁnance ſtrong K Å ß ẞ",
  "e\u0301 a\u0308 n\u0303 \u1100\u1161\u11a8 Å Ω", // decomposed forms: NFC changes them
  "∑∫√∞ ≤≥≠ ±×÷ → ⇒ ∀x∃y",
  "zero\u200bwidth\u200djoiner\ufeffbom soft\u00adhyphen",
];

const EMOJI = ["😀😃😄😁 👍🏽👍🏿 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷🇯🇵 1️⃣ #️⃣ ❤️ ✌︎", "I love 🍕 and 🍣!! 🎉🎉🎉", "🧑🏾‍🚀 flies 🚀 to 🌕 — 🤖💬"];

const WHITESPACE = [
  "a" + " ".repeat(37) + "b",
  "\t\t\tindented\n\n\n\nparagraph\r\n\r\nnext",
  "   leading and trailing   ",
  " \n \n\t \u00a0\u3000 \u0085\u2028\u2029 x",
  "\n".repeat(50),
  " ".repeat(200),
  "line\u0085next\u000bvt\u000cff",
  "word \t\n word",
];

const DIGITS = [
  "3.14159265358979323846264338327950288419716939937510",
  "1,234,567.89 and 0.000001 and 1e-10 and 0xDEADBEEF",
  "+1 (555) 123-4567, 2024-01-31T23:59:59Z",
  "abc123def4567ghi89 x2 3d 100% 50/50",
  "０１２３ fullwidth ٣٤ arabic ३४ devanagari ⅫⅣ roman ²³ superscript",
  "12345678901234567890123456789012345678901234567890",
];

const SPECIAL_TOKENS = [
  "<|im_start|>",
  "<|im_end|>",
  "<|endoftext|>",
  "<think>",
  "</think>",
  "<tool_call>",
  "</tool_call>",
  "<|begin_of_text|>",
  "<|end_of_text|>",
  "<|start_header_id|>",
  "<|end_header_id|>",
  "<|eot_id|>",
  "<|reserved_special_token_5|>",
];

function specialTokenCases(): CorpusCase[] {
  const cases: CorpusCase[] = SPECIAL_TOKENS.map((token, i) => ({
    name: `special ${i}`,
    text: `Before ${token}after, ${token}${token} and x${token}y`,
  }));
  cases.push(
    { name: "special adjacent all", text: SPECIAL_TOKENS.join("") },
    { name: "special partial", text: "<|im_start <|im_end| |im_start|> <|begin_of_text| <think <<|eot_id|>>" },
    { name: "special at edges", text: "<|im_start|>user\nhello<|im_end|>" },
    {
      name: "special chat",
      text: "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
    },
  );
  return cases;
}

function englishText(random: () => number, words: number): string {
  const out: string[] = [];
  for (let i = 0; i < words; i++) {
    let word = WORDS[Math.floor(random() * WORDS.length)]!;
    if (random() < 0.1) word = word[0]!.toUpperCase() + word.slice(1);
    out.push(word);
    const r = random();
    out.push(r < 0.06 ? ". " : r < 0.1 ? ", " : r < 0.12 ? "\n" : r < 0.13 ? "! " : r < 0.14 ? "? " : " ");
  }
  return out.join("");
}

function randomCodePoints(random: () => number, count: number, from: number, to: number): string {
  let text = "";
  for (let i = 0; i < count; i++) text += String.fromCodePoint(from + Math.floor(random() * (to - from)));
  return text;
}

function longWords(random: () => number): CorpusCase[] {
  const letters = "abcdefghijklmnopqrstuvwxyz";
  let mixed = "";
  for (let i = 0; i < 3000; i++) mixed += letters[Math.floor(random() * letters.length)];
  let base64 = "";
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (let i = 0; i < 2000; i++) base64 += alphabet[Math.floor(random() * alphabet.length)];
  return [
    { name: "long a-run", text: "a".repeat(5000) },
    { name: "long random word", text: mixed },
    { name: "long base64", text: base64 },
    { name: "long url", text: `https://example.com/${"path/segment-".repeat(60)}?q=${"x".repeat(300)}` },
    { name: "long punctuation", text: "!".repeat(1000) + "?.".repeat(500) },
    { name: "long cjk", text: randomCodePoints(random, 2000, 0x4e00, 0x9fff) },
    { name: "long emoji run", text: "😀".repeat(500) },
    { name: "long digits", text: "9".repeat(1000) },
  ];
}

function mixedDocuments(random: () => number, count: number): CorpusCase[] {
  const pools = [CODE, SCRIPTS, EMOJI, WHITESPACE, DIGITS, SPECIAL_TOKENS];
  return Array.from({ length: count }, (_, i) => {
    const parts: string[] = [];
    for (let j = 0; j < 60; j++) {
      const r = random();
      if (r < 0.4) parts.push(englishText(random, 5 + Math.floor(random() * 40)));
      else if (r < 0.5) parts.push(randomCodePoints(random, 10 + Math.floor(random() * 50), 0x20, 0x2fff));
      else {
        const pool = pools[Math.floor(random() * pools.length)]!;
        parts.push(pool[Math.floor(random() * pool.length)]!);
      }
    }
    return { name: `mixed document ${i}`, text: parts.join(random() < 0.5 ? " " : "") };
  });
}

/** The whole corpus (about 80 cases, a few hundred kB). */
export function parityCorpus(seed = 20240601): CorpusCase[] {
  const random = seededRng(seed);
  const group = (name: string, texts: readonly string[]) => texts.map((text, i) => ({ name: `${name} ${i}`, text }));
  return [
    { name: "empty", text: "" },
    { name: "single space", text: " " },
    ...Array.from({ length: 6 }, (_, i) => ({ name: `english ${i}`, text: englishText(random, 50 + i * 100) })),
    ...group("code", CODE),
    ...group("script", SCRIPTS),
    ...group("emoji", EMOJI),
    ...group("whitespace", WHITESPACE),
    ...group("digits", DIGITS),
    ...specialTokenCases(),
    ...longWords(random),
    { name: "lone surrogates", text: "a\ud800b \udc00 \ud83d end" },
    { name: "control characters", text: "\u0000\u0001\u0007\u001b[31mred\u001b[0m\u007f" },
    { name: "contractions", text: "'s 'S 'ſ 'T 're 'RE 've 'Ve 'm 'M 'll 'LL 'd 'D 'x it'S I'M" },
    ...mixedDocuments(random, 8),
  ];
}

/** Non-repeating mixed text (prose, code, scripts, numbers) of about `chars` characters. */
export function variedText(seed: number, chars: number): string {
  const random = seededRng(seed);
  const parts: string[] = [];
  let length = 0;
  while (length < chars) {
    const r = random();
    const part =
      r < 0.7
        ? englishText(random, 20)
        : r < 0.8
          ? CODE[Math.floor(random() * CODE.length)]!
          : r < 0.9
            ? SCRIPTS[Math.floor(random() * SCRIPTS.length)]!
            : `${Math.floor(random() * 1e9)} ${randomCodePoints(random, 8, 0x4e00, 0x9fff)} `;
    parts.push(part);
    length += part.length;
  }
  return parts.join("");
}
