/** A request the mocker refuses, answered with vLLM's error object and status. */
export class HttpError extends Error {
  override readonly name = "HttpError";

  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

const ERROR_TYPES: Readonly<Record<number, string>> = {
  400: "BadRequestError",
  404: "NotFoundError",
  405: "MethodNotAllowed",
  408: "RequestTimeout",
  413: "RequestEntityTooLarge",
  429: "TooManyRequests",
  500: "InternalServerError",
  501: "NotImplementedError",
  502: "BadGateway",
  503: "ServiceUnavailableError",
};

/** vLLM's error body: `{ error: { message, type, param, code } }` (the OpenAI shape). */
export function errorBody(status: number, message: string, param: string | null = null): string {
  return JSON.stringify({ error: { message, type: ERROR_TYPES[status] ?? "Error", param, code: status } });
}
