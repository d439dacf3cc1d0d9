import { createTwoFilesPatch } from 'diff';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { buildFromDir, type Build } from '../compile/build.js';
import { formatProblem } from '../policy/problems.js';
import { policyJsonSchema } from '../policy/json-schema.js';
import { PolicyLoadError } from '../policy/load.js';
import { describeError, ModelCenterError } from '../shared/errors.js';
import { readIfExists, writeFileAtomically } from '../shared/fs.js';
import { EXIT, type ExitCode } from './exit-codes.js';
import { spendCommand } from './spend.js';
import { statusCommand } from './status.js';
import { chooseStrategy, findNginx, type StrategyName } from '../reload/default-strategy.js';
import { remoteCommand, serveCommand } from './serve.js';

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  cwd: string;
}

const USAGE = `Usage: modelcenter <command> [options]

Commands:
  validate [--policies DIR]               check the policies; print every problem
  render   [--policies DIR] [--out FILE]  print (or write) the LiteLLM config.yaml
  diff     [--policies DIR] [--config FILE] [--exit-code]
                                          compare the rendered config with the file on disk
  serve                                   the controller: commit, serve and verify the policies with
                                          LiteLLM, apply every policy commit, HTTP API, scheduled jobs
                                          (foreground; Ctrl-C stops it; settings from env, see README)
  up                                      same as serve
  apply    [--force]                      ask the running service to apply the policies now
  plan                                    ask the running service what an apply would change
  reload                                  reload and verify the current config on every instance
  rollback [--to COMMIT]                  return to last-known-good or an earlier generated commit
  status   [--format text|json]           generated commit, last-known-good, drift, and what each
                                          LiteLLM instance serves (MODELCENTER_LITELLM_URLS)
  schema   [--out FILE]                   print the policy JSON Schema for editors
  spend    report|show|ingest|budgets     spend ledger: reports by goal, caller, model, provider, …
                                          (modelcenter spend --help)

Options:
  --policies DIR   policy directory (default: policies, or MODELCENTER_POLICIES)
  --config FILE    LiteLLM config path (default: litellm/config.yaml, or MODELCENTER_CONFIG)
  --format FMT     validate/status/apply output: text (default) or json
  --force          apply over a hand-edited generated file

Exit codes: 0 ok, 1 invalid input, 2 operational failure, 3 changes present (diff --exit-code).
`;

/** Runs one CLI command and returns its exit code. No process globals, so tests call it in-process. */
export async function runCli(
  argv: readonly string[],
  io: CliIo,
  env: NodeJS.ProcessEnv = {},
): Promise<ExitCode> {
  // `spend` has its own flags (src/cli/spend.ts).
  if (argv[0] === 'spend') {
    try {
      return await spendCommand(argv.slice(1), io, env);
    } catch (error) {
      const known = error instanceof ModelCenterError;
      io.stderr(
        `modelcenter spend: ${known ? error.message : `unexpected failure: ${describeError(error)}`}\n`,
      );
      return EXIT.operationalFailure;
    }
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        policies: { type: 'string' },
        config: { type: 'string' },
        out: { type: 'string' },
        format: { type: 'string', default: 'text' },
        'exit-code': { type: 'boolean', default: false },
        port: { type: 'string', default: '4000' },
        force: { type: 'boolean', default: false },
        to: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    io.stderr(`modelcenter: ${describeError(error)}\n\n${USAGE}`);
    return EXIT.invalidInput;
  }
  const { values, positionals } = parsed;
  const command = positionals[0];
  if (values.help || command === undefined || command === 'help') {
    io.stdout(USAGE);
    return command === undefined && !values.help ? EXIT.invalidInput : EXIT.ok;
  }
  const resolve = (p: string): string => path.resolve(io.cwd, p);
  const policies = resolve(values.policies ?? env.MODELCENTER_POLICIES ?? 'policies');
  const configFile = resolve(values.config ?? env.MODELCENTER_CONFIG ?? 'litellm/config.yaml');

  try {
    switch (command) {
      case 'validate':
        return await validateCommand(policies, values.format, io);
      case 'render':
        return await renderCommand(policies, values.out ? resolve(values.out) : undefined, io);
      case 'diff':
        return await diffCommand(policies, configFile, values['exit-code'], io);
      case 'serve':
      case 'up':
        return await serveCommand(
          {
            env: {
              ...env,
              ...(values.policies && { MODELCENTER_POLICIES: values.policies }),
              ...(values.config && { MODELCENTER_CONFIG: values.config }),
            },
            until: stopSignal(),
          },
          io,
        );
      case 'apply':
      case 'plan':
      case 'reload':
      case 'rollback':
        return await remoteCommand(
          command,
          command === 'apply'
            ? { force: values.force }
            : command === 'rollback' && values.to
              ? { to: values.to }
              : {},
          env,
          io,
          values.format === 'json',
        );
      case 'status':
        return await statusCommand(
          {
            policies,
            configFile,
            instances: (env.MODELCENTER_LITELLM_URLS ?? `http://127.0.0.1:${values.port}`)
              .split(',')
              .map((u) => u.trim())
              .filter(Boolean),
            masterKey: env.LITELLM_MASTER_KEY,
            json: values.format === 'json',
            databaseMode: env.MODELCENTER_RELOAD_STRATEGY === 'admin-api',
            strategy: strategyOf(env),
          },
          io,
        );
      case 'schema':
        return await schemaCommand(values.out ? resolve(values.out) : undefined, io);
      default:
        io.stderr(`modelcenter: unknown command "${command}"\n\n${USAGE}`);
        return EXIT.invalidInput;
    }
  } catch (error) {
    if (error instanceof PolicyLoadError) {
      io.stderr(`modelcenter: ${error.message}\n`);
      return EXIT.invalidInput;
    }
    const known = error instanceof ModelCenterError;
    io.stderr(
      `modelcenter: ${known ? error.message : `unexpected failure: ${describeError(error)}`}\n`,
    );
    return EXIT.operationalFailure;
  }
}

/** Builds and prints problems; returns the build only when it produced a config. */
async function buildOrReport(
  policies: string,
  io: CliIo,
): Promise<(Build & { yaml: string }) | undefined> {
  const build = await buildFromDir(policies);
  for (const warning of build.findings.warnings) io.stderr(`warning: ${formatProblem(warning)}\n`);
  for (const error of build.findings.errors) io.stderr(`error: ${formatProblem(error)}\n`);
  if (build.yaml === undefined) {
    io.stderr(`${build.findings.errors.length} error(s): nothing was rendered\n`);
    return undefined;
  }
  return build as Build & { yaml: string };
}

async function validateCommand(
  policies: string,
  format: string | undefined,
  io: CliIo,
): Promise<ExitCode> {
  if (format === 'json') {
    const build = await buildFromDir(policies);
    io.stdout(
      `${JSON.stringify({ valid: build.yaml !== undefined, ...build.findings }, null, 2)}\n`,
    );
    return build.yaml === undefined ? EXIT.invalidInput : EXIT.ok;
  }
  if (format !== 'text') {
    io.stderr(`modelcenter: --format must be text or json, not "${format}"\n`);
    return EXIT.invalidInput;
  }
  const build = await buildOrReport(policies, io);
  if (!build) return EXIT.invalidInput;
  const deployments = build.config?.model_list.length ?? 0;
  io.stdout(
    `ok: ${build.set.files.length} file(s), ${build.set.providers.size} providers, ${build.set.models.size} models, ` +
      `${build.set.profiles.size} profiles, ${deployments} deployments` +
      (build.findings.warnings.length ? `, ${build.findings.warnings.length} warning(s)` : '') +
      '\n',
  );
  return EXIT.ok;
}

async function renderCommand(
  policies: string,
  out: string | undefined,
  io: CliIo,
): Promise<ExitCode> {
  const build = await buildOrReport(policies, io);
  if (!build) return EXIT.invalidInput;
  if (!out) {
    io.stdout(build.yaml);
    return EXIT.ok;
  }
  await writeFileAtomically(out, build.yaml);
  io.stderr(`wrote ${path.relative(io.cwd, out) || out}\n`);
  return EXIT.ok;
}

async function diffCommand(
  policies: string,
  configFile: string,
  exitCode: boolean,
  io: CliIo,
): Promise<ExitCode> {
  const build = await buildOrReport(policies, io);
  if (!build) return EXIT.invalidInput;
  const current = await readIfExists(configFile);
  const label = path.relative(io.cwd, configFile) || configFile;
  if (current === build.yaml) {
    io.stdout(`no changes: ${label} matches the policies\n`);
    return EXIT.ok;
  }
  io.stdout(
    createTwoFilesPatch(
      current === undefined ? '/dev/null' : label,
      `${label} (rendered)`,
      current ?? '',
      build.yaml,
    ),
  );
  return exitCode ? EXIT.changesPresent : EXIT.ok;
}

async function schemaCommand(out: string | undefined, io: CliIo): Promise<ExitCode> {
  const text = `${JSON.stringify(policyJsonSchema(), null, 2)}\n`;
  if (!out) {
    io.stdout(text);
    return EXIT.ok;
  }
  await writeFileAtomically(out, text);
  return EXIT.ok;
}

/** Resolves on the first SIGINT or SIGTERM. */
function stopSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

/** The strategy `serve` would run with this environment, and why (for `status`). */
function strategyOf(env: NodeJS.ProcessEnv): { name: string; reason: string } {
  const explicit = env.MODELCENTER_RELOAD_STRATEGY;
  const chosen = chooseStrategy({
    ...(explicit && {
      explicit: { strategy: explicit as StrategyName, from: 'MODELCENTER_RELOAD_STRATEGY' },
    }),
    ...(env.MODELCENTER_RESTART_COMMAND && { restartCommand: env.MODELCENTER_RESTART_COMMAND }),
    nginx: findNginx(env),
  });
  return { name: chosen.strategy, reason: chosen.reason };
}
