import { createTwoFilesPatch } from 'diff';
import { Option, type Command } from 'commander';
import path from 'node:path';
import { buildFromDir, type Build } from '../../compile/build.js';
import { formatProblem } from '../../policy/problems.js';
import { policyJsonSchema } from '../../policy/json-schema.js';
import { readIfExists, writeFileAtomically } from '../../shared/fs.js';
import {
  action,
  configFile,
  CONFIG_FLAGS,
  CONFIG_HELP,
  policiesDir,
  POLICIES_FLAGS,
  POLICIES_HELP,
  type CliContext,
} from '../context.js';
import { EXIT, type ExitCode } from '../exit-codes.js';
import type { CliIo } from '../io.js';

/** `validate`, `render`, `diff`, `schema`: the policies on disk, no service needed. */
export function registerPolicy(program: Command, context: CliContext): void {
  const out = (p: string | undefined): string | undefined =>
    p === undefined ? undefined : path.resolve(context.io.cwd, p);
  program
    .command('validate')
    .summary('check the policies; print every problem')
    .description(
      'Check every policy file; print every problem as `file:line:col path: what is wrong — how to fix it`. Exit 1 when there is one.',
    )
    .option(POLICIES_FLAGS, POLICIES_HELP)
    .addOption(new Option('--format <format>', 'output').choices(['text', 'json']).default('text'))
    .action(
      action(context, (options: { policies?: string; format: string }) =>
        validateCommand(policiesDir(context, options.policies), options.format, context.io),
      ),
    );
  program
    .command('render')
    .summary('print (or write) the LiteLLM config.yaml')
    .description('Print the LiteLLM config.yaml the policies compile to, or write it atomically.')
    .option(POLICIES_FLAGS, POLICIES_HELP)
    .option('--out <file>', 'write it here instead of printing it')
    .action(
      action(context, (options: { policies?: string; out?: string }) =>
        renderCommand(policiesDir(context, options.policies), out(options.out), context.io),
      ),
    );
  program
    .command('diff')
    .summary('compare the rendered config with the file on disk')
    .description('Unified diff of the rendered config against the file on disk.')
    .option(POLICIES_FLAGS, POLICIES_HELP)
    .option(CONFIG_FLAGS, CONFIG_HELP)
    .option('--exit-code', 'exit 3 when there are differences', false)
    .action(
      action(context, (options: { policies?: string; config?: string; exitCode: boolean }) =>
        diffCommand(
          policiesDir(context, options.policies),
          configFile(context, options.config),
          options.exitCode,
          context.io,
        ),
      ),
    );
  program
    .command('schema')
    .summary('print the policy JSON Schema for editors')
    .description('The policy JSON Schema for editors (committed as docs/policy.schema.json).')
    .option('--out <file>', 'write it here instead of printing it')
    .action(
      action(context, (options: { out?: string }) => schemaCommand(out(options.out), context.io)),
    );
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
