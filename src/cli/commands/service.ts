import { Option, type Command } from 'commander';
import { action, type CliContext } from '../context.js';
import { EXIT, type ExitCode } from '../exit-codes.js';
import type { CliIo } from '../io.js';
import { askService, serviceError } from '../service-client.js';

const SERVICE_HELP =
  'Asks the running service (MODELCENTER_URL, else 127.0.0.1:MODELCENTER_API_PORT; token from MODELCENTER_TOKEN or .modelcenter/api-token).';

/** `apply`, `plan`, `reload`, `rollback`: ask the running service over its API. */
export function registerService(program: Command, context: CliContext): void {
  const format = (): Option =>
    new Option('--format <format>', 'output').choices(['text', 'json']).default('text');
  program
    .command('apply')
    .summary('ask the running service to apply the policies now')
    .description(
      `Validate, compile, commit, reload and verify the policies now, or roll back. ${SERVICE_HELP}`,
    )
    .option('--force', 'apply over a hand-edited generated file (drift)', false)
    .addOption(format())
    .action(
      action(context, (options: { force: boolean; format: string }) =>
        remoteCommand(
          'apply',
          { force: options.force },
          context.env,
          context.io,
          options.format === 'json',
        ),
      ),
    );
  program
    .command('plan')
    .summary('ask the running service what an apply would change (exit 3 when it would)')
    .description(
      `What an apply would change, without applying; exit 3 when there are changes. ${SERVICE_HELP}`,
    )
    .addOption(format())
    .action(
      action(context, (options: { format: string }) =>
        remoteCommand('plan', {}, context.env, context.io, options.format === 'json'),
      ),
    );
  program
    .command('reload')
    .summary('reload and verify the current config on every instance')
    .description(
      `Reload and verify the current config on every instance, even if unchanged. ${SERVICE_HELP}`,
    )
    .addOption(format())
    .action(
      action(context, (options: { format: string }) =>
        remoteCommand('reload', {}, context.env, context.io, options.format === 'json'),
      ),
    );
  program
    .command('rollback')
    .summary('return to last-known-good or an earlier generated commit')
    .description(
      `Return to last-known-good or an earlier generated commit, verified. ${SERVICE_HELP}`,
    )
    .option('--to <commit>', 'a generated commit (default: last-known-good)')
    .addOption(format())
    .action(
      action(context, (options: { to?: string; format: string }) =>
        remoteCommand(
          'rollback',
          options.to ? { to: options.to } : {},
          context.env,
          context.io,
          options.format === 'json',
        ),
      ),
    );
}

/** `apply`, `rollback`, `plan`, `reload`: ask the running service over its API. */
export async function remoteCommand(
  command: 'apply' | 'rollback' | 'plan' | 'reload',
  body: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  io: CliIo,
  json: boolean,
): Promise<ExitCode> {
  const reply = await askService(`/v1/${command}`, body, env, io);
  if ('failed' in reply) return reply.failed;
  const { answer } = reply;
  if (json) io.stdout(`${JSON.stringify(answer, null, 2)}\n`);
  const failed = serviceError(reply, io);
  if (failed !== undefined) return failed;
  if (!json) printAnswer(command, answer, io);
  if (command === 'plan') {
    if (answer.valid === false) return EXIT.invalidInput;
    return answer.changed ? EXIT.changesPresent : EXIT.ok;
  }
  if (answer.outcome === 'invalid' || answer.outcome === 'drift') return EXIT.invalidInput;
  return reply.ok ? EXIT.ok : EXIT.operationalFailure;
}

function printAnswer(command: string, answer: Record<string, unknown>, io: CliIo): void {
  const problems = (answer.problems as string[] | undefined) ?? [];
  if (command === 'plan') {
    for (const p of problems) io.stderr(`error: ${p}\n`);
    if (answer.valid === false) return;
    if (!answer.changed) io.stdout('no changes: the committed config matches the policies\n');
    else io.stdout(String(answer.diff));
    const reordered = (answer.orderChanges ?? []) as { profile: string; why: string[] }[];
    for (const change of reordered) {
      io.stdout(`order of profile ${change.profile} changes:\n`);
      for (const why of change.why) io.stdout(`  ${why}\n`);
    }
    return;
  }
  const commit = typeof answer.commit === 'string' ? ` ${answer.commit.slice(0, 12)}` : '';
  io.stdout(`${command}: ${String(answer.outcome)}${commit}\n`);
  for (const p of problems) io.stderr(`  ${p}\n`);
  if (typeof answer.litellmOutput === 'string' && answer.outcome !== 'applied') {
    io.stderr(`LiteLLM said:\n${answer.litellmOutput}\n`);
  }
}
