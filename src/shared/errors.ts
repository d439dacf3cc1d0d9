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
