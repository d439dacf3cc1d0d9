import { ModelCenterError } from '../shared/errors.js';

/** A LiteLLM HTTP call failed; `status` is undefined when no answer came back at all. */
export class LiteLLMApiError extends ModelCenterError {
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly route: string,
  ) {
    super(message);
  }
}

/** A LiteLLM process did not start, or did not become ready. */
export class LiteLLMStartError extends ModelCenterError {
  constructor(
    message: string,
    /** The last lines LiteLLM printed, secrets masked. */
    readonly output: string,
  ) {
    super(message);
  }
}
