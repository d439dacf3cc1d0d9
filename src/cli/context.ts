import path from 'node:path';
import type { ExitCode } from './exit-codes.js';
import type { CliIo } from './io.js';

/** What every command of the CLI gets: where to write, the environment, where its result goes. */
export interface CliContext {
  io: CliIo;
  env: NodeJS.ProcessEnv;
  /** Records the exit code a command decided on (the entry, src/cli/run.ts, returns it). */
  done(code: ExitCode): void;
}

/** A commander action that runs `command` and records the exit code it returns. */
export function action<A extends unknown[]>(
  context: CliContext,
  command: (...args: A) => Promise<ExitCode>,
): (...args: A) => Promise<void> {
  return async (...args) => context.done(await command(...args));
}

/** A path from a flag, an environment variable or a default, relative to the working directory. */
export function resolvePath(
  context: CliContext,
  flag: string | undefined,
  envName: string,
  fallback: string,
): string {
  return path.resolve(context.io.cwd, flag ?? context.env[envName] ?? fallback);
}

/** `--policies DIR`: MODELCENTER_POLICIES, else `policies`. */
export function policiesDir(context: CliContext, flag: string | undefined): string {
  return resolvePath(context, flag, 'MODELCENTER_POLICIES', 'policies');
}

/** `--config FILE`: MODELCENTER_CONFIG, else `litellm/config.yaml`. */
export function configFile(context: CliContext, flag: string | undefined): string {
  return resolvePath(context, flag, 'MODELCENTER_CONFIG', 'litellm/config.yaml');
}

export const POLICIES_FLAGS = '--policies <dir>';
export const POLICIES_HELP = 'policy directory (default: policies, or MODELCENTER_POLICIES)';
export const CONFIG_FLAGS = '--config <file>';
export const CONFIG_HELP =
  'LiteLLM config path (default: litellm/config.yaml, or MODELCENTER_CONFIG)';
