/** Exit codes of `modelcenter`, decided here and nowhere else (documented in the README). */
export const EXIT = {
  ok: 0,
  /** The policies, a flag or another input is wrong: fix the input. */
  invalidInput: 1,
  /** Something outside the input failed: a file, git, LiteLLM, the network. */
  operationalFailure: 2,
  /** `diff --exit-code` found differences. */
  changesPresent: 3,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];
