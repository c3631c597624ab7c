/**
 * Deterministic text for generated token ids: each id reads as one word of a fixed list, so a request's
 * output text is a function of its output ids (which the engine derives from the prompt).
 */
const WORDS = (
  "the a of and to in is that it for on with as was at by an be this from or have not are which but " +
  "cache block prefix token route worker engine model prompt request stream decode prefill batch queue " +
  "event index score load gateway picker pool rank transfer latency memory page hash tree leaf node " +
  "quick brown fox jumps over lazy dog bright river stone cloud light north south east west morning " +
  "evening signal answer question story map city ancient explorer journey forest mountain desert"
).split(" ");

/** The text piece of the output token at `index` (words separated by single spaces). */
export function tokenText(tokenId: number, index: number): string {
  const word = WORDS[tokenId % WORDS.length]!;
  return index === 0 ? word : ` ${word}`;
}
