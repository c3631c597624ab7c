/** An added token as listed in `tokenizer.json` (`added_tokens`). */
export interface AddedTokenSpec {
  readonly id: number;
  readonly content: string;
  readonly normalized: boolean;
}

const REGEX_SPECIAL = /[\\^$.*+?()[\]{}|/-]/g;

/**
 * Splits text around added tokens, the way the Rust `tokenizers` crate does: at each position the
 * leftmost match wins, and among matches starting there the longest one.
 */
export class AddedTokenSplitter {
  private readonly pattern: RegExp | null;
  private readonly ids: Map<string, number>;

  constructor(tokens: readonly AddedTokenSpec[]) {
    this.ids = new Map(tokens.map((token) => [token.content, token.id]));
    const contents = [...this.ids.keys()].filter((content) => content.length > 0);
    // JavaScript alternation is leftmost-first: longest alternatives first makes it leftmost-longest.
    contents.sort((a, b) => b.length - a.length);
    this.pattern =
      contents.length === 0 ? null : new RegExp(contents.map((c) => c.replace(REGEX_SPECIAL, "\\$&")).join("|"), "gu");
  }

  /** Calls `onText` for each run of ordinary text and `onToken` for each added token, in order. */
  split(text: string, onText: (segment: string) => void, onToken: (id: number) => void): void {
    if (this.pattern === null) {
      if (text.length > 0) onText(text);
      return;
    }
    const pattern = this.pattern;
    pattern.lastIndex = 0;
    let start = 0;
    for (let match = pattern.exec(text); match !== null; match = pattern.exec(text)) {
      if (match.index > start) onText(text.slice(start, match.index));
      onToken(this.ids.get(match[0])!);
      start = pattern.lastIndex;
    }
    if (start < text.length) onText(start === 0 ? text : text.slice(start));
  }
}
