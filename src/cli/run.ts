import { CommanderError } from 'commander';
import { PolicyLoadError } from '../policy/load.js';
import { describeError, ModelCenterError } from '../shared/errors.js';
import { EXIT, type ExitCode } from './exit-codes.js';
import type { CliIo } from './io.js';
import { buildProgram } from './program.js';

export type { CliIo } from './io.js';

/**
 * The CLI's entry: runs one command and decides its exit code (README, "Exit codes") — the
 * command's own answer, 1 for input commander refuses (unknown command or flag, a missing or
 * invalid value) and for policies that cannot be read, 2 for anything else that failed. No
 * process globals, so tests call it in-process; src/cli/index.ts binds it to the process.
 */
export async function runCli(
  argv: readonly string[],
  io: CliIo,
  env: NodeJS.ProcessEnv = {},
): Promise<ExitCode> {
  let code: ExitCode = EXIT.ok;
  let label = 'modelcenter';
  const program = buildProgram({ io, env, done: (c) => (code = c) });
  program.hook('preAction', (_program, command) => {
    label = command.parent?.parent ? `modelcenter ${command.parent.name()}` : 'modelcenter';
  });
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return code;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Already said on stderr (or help printed); help asked for is a success.
      return error.exitCode === 0 ? EXIT.ok : EXIT.invalidInput;
    }
    if (error instanceof PolicyLoadError) {
      io.stderr(`${label}: ${error.message}\n`);
      return EXIT.invalidInput;
    }
    const known = error instanceof ModelCenterError;
    io.stderr(
      `${label}: ${known ? error.message : `unexpected failure: ${describeError(error)}`}\n`,
    );
    return EXIT.operationalFailure;
  }
}
