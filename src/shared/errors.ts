/**
 * Base class for errors a person can act on: the message says what went wrong and what to check.
 * The CLI prints `message` and never a stack trace for these.
 */
export class ModelCenterError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Reads a message from anything thrown, without leaking a stack. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/**
 * Input a caller gave that cannot be acted on as written (a bad date, an unknown commit, a range
 * where one commit is wanted). The API answers it with `status` in its one error shape, naming
 * `field`; it is never a failed operation.
 */
export class InputError extends ModelCenterError {
  readonly status: 400 | 404 | 409 | 422;
  readonly code: string;
  readonly field: string | undefined;

  constructor(
    message: string,
    options: { status?: 400 | 404 | 409 | 422; code?: string; field?: string } = {},
  ) {
    super(message);
    this.status = options.status ?? 400;
    this.code = options.code ?? (this.status === 404 ? 'not_found' : 'invalid_request');
    this.field = options.field;
  }
}
