/** Base class of every error this package throws on purpose. */
export class TokenizerError extends Error {
  override readonly name: string = "TokenizerError";
}

/**
 * The request cannot be tokenized as the engine would: a bad body shape, a bad field value or a chat
 * template that fails on it. `field` names the offending field (`messages[2].content`, `prompt`, ...);
 * the message starts with it. Maps to HTTP 400.
 */
export class InvalidRequest extends TokenizerError {
  override readonly name = "InvalidRequest";

  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${field}: ${reason}`);
  }
}

/** The tokenizer files are missing, unreadable or not a tokenizer this package can run. */
export class TokenizerLoadError extends TokenizerError {
  override readonly name = "TokenizerLoadError";
}

/** No tokenizer is registered for the model name and the registry has no default. */
export class UnknownModel extends TokenizerError {
  override readonly name = "UnknownModel";

  constructor(readonly model: string) {
    super(`no tokenizer registered for model "${model}"`);
  }
}
