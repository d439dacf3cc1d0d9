import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Option, type Command } from 'commander';
import { DURATION_PATTERN, parsePointInTime } from '../../shared/duration.js';
import { describeError } from '../../shared/errors.js';
import { action, type CliContext } from '../context.js';
import { EXIT, type ExitCode } from '../exit-codes.js';
import type { CliIo } from '../io.js';
import { askService, serviceError } from '../service-client.js';

const SERVICE_HELP =
  'Asks the running service (MODELCENTER_URL, else 127.0.0.1:MODELCENTER_API_PORT; token from MODELCENTER_TOKEN or .modelcenter/api-token).';

const format = (): Option =>
  new Option('--format <format>', 'output').choices(['text', 'json']).default('text');

/**
 * `credentials rotate|status|rollback` and `keys audit`: provider credentials and the audit trail,
 * through the running service (a rotation swaps the value into the LiteLLM it runs). A new value
 * is read from stdin, a file or a variable — never from an argument, which `ps` and shell history
 * would show.
 */
export function registerKeys(program: Command, context: CliContext): void {
  const credentials = program
    .command('credentials')
    .summary('provider credentials: rotate, status, rollback')
    .description(`Provider credentials held by LiteLLM. ${SERVICE_HELP}`);
  credentials
    .command('rotate')
    .summary("rotate a provider's credential with no failed request")
    .description(
      `Probe the new value against the provider (refused: nothing changes), store it, swap it in with no failed request, canary through LiteLLM, keep the old value for the grace period, then run the policy's retire hook once. The value is read from stdin unless --value-from-file or --value-from-env names another source. ${SERVICE_HELP}`,
    )
    .argument('<provider>', 'the provider, as named in the policies')
    // A value given as an argument would sit in `ps` and the shell history: refused.
    .allowExcessArguments(false)
    .option('--value-from-file <path>', 'read the new value from this file')
    .option('--value-from-env <variable>', 'read the new value from this environment variable')
    .option(
      '--grace <duration>',
      "how long the old value stays valid (default: the policy's, else 1h)",
    )
    .option('--now', 'compromised: no grace, retire the old value right after the swap', false)
    .addOption(format())
    .action(
      action(
        context,
        async (
          provider: string,
          options: {
            valueFromFile?: string;
            valueFromEnv?: string;
            grace?: string;
            now: boolean;
            format: string;
          },
        ) => rotateCredential(provider, options, context),
      ),
    );
  credentials
    .command('status')
    .summary('every provider credential: source, fingerprint, age, rotation')
    .description(
      `Every provider credential: where its value comes from (store, env, missing), its fingerprint and age, the old value still in grace, the last rotation and the next scheduled one. ${SERVICE_HELP}`,
    )
    .addOption(format())
    .action(
      action(context, async (options: { format: string }) => {
        const reply = await askService('/v1/credentials', {}, context.env, context.io, 'GET');
        if ('failed' in reply) return reply.failed;
        const failed = serviceError(reply, context.io);
        if (failed !== undefined) return failed;
        if (options.format === 'json')
          context.io.stdout(`${JSON.stringify(reply.answer, null, 2)}\n`);
        else printCredentials(reply.answer, context.io);
        return EXIT.ok;
      }),
    );
  credentials
    .command('rollback')
    .summary('bring the old value back while a rotation is in its grace period')
    .description(`Roll back a rotation whose old value was not retired yet. ${SERVICE_HELP}`)
    .argument('<provider>', 'the provider, as named in the policies')
    .action(
      action(context, async (provider: string) => {
        const reply = await askService(
          `/v1/credentials/${encodeURIComponent(provider)}/rollback`,
          {},
          context.env,
          context.io,
        );
        if ('failed' in reply) return reply.failed;
        const failed = serviceError(reply, context.io);
        if (failed !== undefined) return failed;
        const rotation = reply.answer.rotation as { id?: string; state?: string } | undefined;
        context.io.stdout(
          `rollback of ${provider}: rotation ${rotation?.id} is ${rotation?.state}\n`,
        );
        return rotation?.state === 'rolled-back' ? EXIT.ok : EXIT.operationalFailure;
      }),
    );

  const keys = program
    .command('keys')
    .summary('keys: the audit trail of rotations and key operations')
    .description(`Keys and their audit trail. ${SERVICE_HELP}`);
  keys
    .command('rotate-master')
    .summary("rotate LiteLLM's master key (configuration or database mode)")
    .description(
      `A new master key (generated, or from --value-from-stdin/-file/-env) goes live through the reload strategy and is delivered (the policy's master_key.deliver hook or file, and one read with "modelcenter keys read-master"); during the grace period the blue-green front still accepts the old key, after it the old key is refused. Database mode (the admin-api strategy): refused without LITELLM_SALT_KEY; the old key becomes a LiteLLM virtual key that expires with the grace period, then MODELCENTER_RESTART_COMMAND restarts the instances with the new LITELLM_MASTER_KEY in its environment. ${SERVICE_HELP}`,
    )
    .option('--value-from-stdin', 'read the new key from stdin instead of generating one', false)
    .option('--value-from-file <path>', 'read the new key from this file')
    .option('--value-from-env <variable>', 'read the new key from this environment variable')
    .option(
      '--grace <duration>',
      "how long the old key keeps working (default: the policy's, else 1h)",
    )
    .option('--now', 'compromised: the old key is refused right away', false)
    .addOption(format())
    .action(
      action(
        context,
        async (options: {
          valueFromStdin: boolean;
          valueFromFile?: string;
          valueFromEnv?: string;
          grace?: string;
          now: boolean;
          format: string;
        }) => rotateMaster(options, context),
      ),
    );
  keys
    .command('read-master')
    .summary('print the new master key once (its one authenticated API read)')
    .description(
      `Prints the master key of the last rotation on stdout, once: the service forgets it after this read. ${SERVICE_HELP}`,
    )
    .action(
      action(context, async () => {
        const reply = await askService(
          '/v1/keys/master/delivery',
          {},
          context.env,
          context.io,
          'GET',
        );
        if ('failed' in reply) return reply.failed;
        const failed = serviceError(reply, context.io);
        if (failed !== undefined) return failed;
        context.io.stdout(`${text(reply.answer.value)}\n`);
        return EXIT.ok;
      }),
    );
  keys
    .command('audit')
    .summary('every step of every rotation and key operation (never a value)')
    .description(
      `Who (token name, schedule), what, when, outcome and fingerprints of every rotation step. ${SERVICE_HELP}`,
    )
    .option('--since <when>', 'only events since then: 24h, 7d, 2026-11-01')
    .option(
      '--subject <subject>',
      'only events about this: provider:openai, master-key, caller:NAME',
    )
    .option('--rotation <id>', 'only the steps of this rotation')
    .addOption(format())
    .action(
      action(
        context,
        async (options: {
          since?: string;
          subject?: string;
          rotation?: string;
          format: string;
        }) => {
          if (options.since) {
            const parsed = parsePointInTime(options.since, new Date());
            if (!parsed.ok) {
              context.io.stderr(`modelcenter keys: --since: ${parsed.reason}\n`);
              return EXIT.invalidInput;
            }
          }
          const query = new URLSearchParams();
          if (options.since) query.set('since', options.since);
          if (options.subject) query.set('subject', options.subject);
          if (options.rotation) query.set('rotation', options.rotation);
          const reply = await askService(
            `/v1/keys/audit${query.size > 0 ? `?${query.toString()}` : ''}`,
            {},
            context.env,
            context.io,
            'GET',
          );
          if ('failed' in reply) return reply.failed;
          const failed = serviceError(reply, context.io);
          if (failed !== undefined) return failed;
          if (options.format === 'json')
            context.io.stdout(`${JSON.stringify(reply.answer, null, 2)}\n`);
          else printAudit(reply.answer, context.io);
          return EXIT.ok;
        },
      ),
    );
}

async function rotateCredential(
  provider: string,
  options: {
    valueFromFile?: string;
    valueFromEnv?: string;
    grace?: string;
    now: boolean;
    format: string;
  },
  context: CliContext,
): Promise<ExitCode> {
  const { io, env } = context;
  const fail = (message: string): ExitCode => {
    io.stderr(`modelcenter credentials: ${message}\n`);
    return EXIT.invalidInput;
  };
  const timing = graceProblem(options, 'retires the old value');
  if (timing) return fail(timing);
  const read = await readNewValue(options, context, { stdinByDefault: true });
  if ('problem' in read) return fail(read.problem);
  const value = read.value ?? '';
  if (value === '')
    return fail(
      'no new value: pipe it on stdin (e.g. from a password manager), or use --value-from-file or --value-from-env',
    );
  const reply = await askService(
    `/v1/credentials/${encodeURIComponent(provider)}/rotate`,
    { value, ...(options.grace && { grace: options.grace }), now: options.now },
    env,
    io,
  );
  if ('failed' in reply) return reply.failed;
  if (options.format === 'json' && !reply.answer.error)
    io.stdout(`${JSON.stringify(reply.answer, null, 2)}\n`);
  const failed = serviceError(reply, io);
  if (failed !== undefined) return failed;
  if (options.format !== 'json') {
    const a = reply.answer;
    io.stdout(
      `rotated ${provider}: ${text(a.oldFingerprint, 'none')} → ${String(a.newFingerprint)} (rotation ${String(a.rotationId)})\n` +
        `  probe ${JSON.stringify(a.probe)}, swap ${String(a.swap)}, canary ${JSON.stringify(a.canary)}\n` +
        (a.retired
          ? '  the old value was retired at once\n'
          : `  the old value stays valid until ${String(a.graceUntil)}, then it is retired\n`),
    );
  }
  return EXIT.ok;
}

async function rotateMaster(
  options: {
    valueFromStdin: boolean;
    valueFromFile?: string;
    valueFromEnv?: string;
    grace?: string;
    now: boolean;
    format: string;
  },
  context: CliContext,
): Promise<ExitCode> {
  const { io, env } = context;
  const fail = (message: string): ExitCode => {
    io.stderr(`modelcenter keys: ${message}\n`);
    return EXIT.invalidInput;
  };
  const timing = graceProblem(options, 'refuses the old key');
  if (timing) return fail(timing);
  const read = await readNewValue(options, context, { stdinByDefault: false });
  if ('problem' in read) return fail(read.problem);
  const { value } = read;
  const reply = await askService(
    '/v1/keys/master/rotate',
    {
      ...(value !== undefined && { value }),
      ...(options.grace && { grace: options.grace }),
      now: options.now,
    },
    env,
    io,
  );
  if ('failed' in reply) return reply.failed;
  const failed = serviceError(reply, io);
  if (failed !== undefined) return failed;
  const a = reply.answer;
  if (options.format === 'json') io.stdout(`${JSON.stringify(a, null, 2)}\n`);
  else
    io.stdout(
      `rotated the master key: ${text(a.oldFingerprint)} → ${text(a.newFingerprint)} (rotation ${text(a.rotationId)})\n` +
        `  delivered: ${((a.delivered as string[] | undefined) ?? []).join(', ')}\n` +
        (a.retired
          ? '  the old key is refused from now on\n'
          : `  the old key works until ${text(a.graceUntil)}\n`),
    );
  return EXIT.ok;
}

/** `--grace` is a duration and is not given with `--now`; the problem in words, or undefined. */
function graceProblem(
  options: { grace?: string; now: boolean },
  nowDoes: string,
): string | undefined {
  if (options.grace && !DURATION_PATTERN.test(options.grace))
    return `--grace "${options.grace}" is not a duration — write e.g. 30m, 1h or 1d`;
  if (options.now && options.grace) return `--now ${nowDoes} at once: drop --grace`;
  return undefined;
}

/**
 * A new secret from one source: a file, a variable or standard input (flagged, or by default);
 * never an argument, which `ps` and shell history would keep. Trimmed; none when no source is given.
 */
async function readNewValue(
  options: { valueFromStdin?: boolean; valueFromFile?: string; valueFromEnv?: string },
  { io, env }: CliContext,
  { stdinByDefault }: { stdinByDefault: boolean },
): Promise<{ value?: string } | { problem: string }> {
  const sources = [options.valueFromStdin, options.valueFromFile, options.valueFromEnv];
  if (sources.filter(Boolean).length > 1)
    return { problem: 'give the new value one way: stdin, --value-from-file or --value-from-env' };
  try {
    if (options.valueFromFile)
      return {
        value: (await readFile(path.resolve(io.cwd, options.valueFromFile), 'utf8')).trim(),
      };
    if (options.valueFromEnv) {
      const found = env[options.valueFromEnv];
      if (!found) return { problem: `--value-from-env: ${options.valueFromEnv} is not set` };
      return { value: found.trim() };
    }
    if (options.valueFromStdin || stdinByDefault)
      return { value: (await (io.readStdin ?? readProcessStdin)()).trim() };
    return {};
  } catch (error) {
    return { problem: `cannot read the new value: ${describeError(error)}` };
  }
}

async function readProcessStdin(): Promise<string> {
  if (process.stdin.isTTY) {
    throw new Error('stdin is a terminal: pipe the value in, or use --value-from-file');
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function printCredentials(answer: Record<string, unknown>, io: CliIo): void {
  const rows = (answer.credentials as Record<string, unknown>[] | undefined) ?? [];
  io.stdout(`secret store: ${String(answer.backend)}\n`);
  if (rows.length === 0) io.stdout('no provider has a credential\n');
  for (const c of rows) {
    const rotation = c.rotation as Record<string, string> | undefined;
    const previous = c.previous as Record<string, string> | undefined;
    io.stdout(
      [
        `${String(c.provider)}  ${String(c.reference)}`,
        `  source ${String(c.source)}${c.overridesEnv ? ' (rotated: the stored value takes precedence over the environment)' : ''}`,
        `  fingerprint ${text(c.fingerprint, '-')}${c.ageSeconds !== undefined ? `, age ${formatAge(Number(c.ageSeconds))}` : ''}`,
        ...(previous
          ? [`  old value ${previous.fingerprint} valid until ${previous.expiresAt}`]
          : []),
        ...(rotation
          ? [`  last rotation ${rotation.id}: ${rotation.state} (started ${rotation.startedAt})`]
          : []),
        ...(c.nextRotation
          ? [`  next scheduled rotation ${text(c.nextRotation)} (every ${String(c.rotateEvery)})`]
          : []),
      ].join('\n') + '\n',
    );
  }
}

function printAudit(answer: Record<string, unknown>, io: CliIo): void {
  const events = (answer.events as Record<string, unknown>[] | undefined) ?? [];
  if (events.length === 0) io.stdout('no audit events\n');
  for (const e of events) {
    const f = e.fingerprints as { old?: string; new?: string } | undefined;
    io.stdout(
      `${String(e.at)}  ${String(e.actor)}  ${String(e.action)}  ${String(e.subject)}  ${String(e.step)}  ${String(e.outcome)}` +
        `${f ? `  ${f.old ?? '-'}→${f.new ?? '-'}` : ''}  ${String(e.rotationId)}${e.detail ? `  ${text(e.detail)}` : ''}\n`,
    );
  }
}

function formatAge(seconds: number): string {
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)}h`;
  return `${Math.round(seconds / 86_400)}d`;
}

function text(value: unknown, fallback = ''): string {
  return typeof value === 'string' ? value : fallback;
}
