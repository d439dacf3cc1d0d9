import { Command } from 'commander';
import { registerCompletion } from './commands/completion.js';
import { registerKeys } from './commands/keys.js';
import { registerProvidersHealth } from './commands/health.js';
import { registerPolicy } from './commands/policy.js';
import { registerModels, registerProviders } from './commands/providers.js';
import { registerServe } from './commands/serve.js';
import { registerService } from './commands/service.js';
import { registerSpend } from './commands/spend.js';
import { registerStatus } from './commands/status.js';
import { registerVirtualKeys } from './commands/virtual-keys.js';
import type { CliContext } from './context.js';

const EXIT_HELP = `
Exit codes: 0 ok, 1 invalid input (policies, flags, commands), 2 operational failure,
3 changes present (diff --exit-code, plan). Shell completion: modelcenter completion --help
`;

/**
 * The `modelcenter` program: every verb group registers its commands (src/cli/commands/), with
 * help generated from them. Commander never exits the process: it throws, and the entry
 * (src/cli/run.ts) turns that into an exit code.
 */
export function buildProgram(context: CliContext): Command {
  const program = new Command('modelcenter')
    .description(
      'Control plane for LiteLLM: policies → config.yaml → git → reload → verify; HTTP API; spend ledger.',
    )
    .exitOverride()
    .configureOutput({
      writeOut: (text) => context.io.stdout(text),
      writeErr: (text) => context.io.stderr(text),
    })
    .addHelpText('after', EXIT_HELP);
  registerPolicy(program, context);
  registerServe(program, context);
  registerService(program, context);
  registerStatus(program, context);
  registerSpend(program, context);
  registerProviders(program, context);
  registerModels(program, context);
  // After registerProviders: it joins the `providers` group.
  registerProvidersHealth(program, context);
  registerCompletion(program, context);
  registerKeys(program, context);
  registerVirtualKeys(program, context);
  explainErrors(program);
  return program;
}

/**
 * Errors in the project's voice (`modelcenter spend: unknown option "--colour"`), each followed
 * by where the usage is; an unknown command is named, not guessed at silently.
 */
function explainErrors(command: Command, path: string[] = []): void {
  const name = [...path, command.name()];
  const label = name.slice(0, 2).join(' ');
  command
    .configureOutput({
      outputError: (text, write) =>
        write(`${label}: ${text.replace(/^error: /, '').replace(/'([^']*)'/g, '"$1"')}`),
    })
    .showHelpAfterError(`(${name.join(' ')} --help for usage)`);
  if (command.commands.length > 0) {
    command.on('command:*', (operands: string[]) => {
      command.error(
        `unknown ${path.length === 0 ? 'command' : 'subcommand'} "${operands[0] ?? ''}"`,
        { code: 'commander.unknownCommand' },
      );
    });
  }
  for (const sub of command.commands) explainErrors(sub, name);
}
