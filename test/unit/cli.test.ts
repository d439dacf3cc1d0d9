import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/run.js';
import { freePort } from '../../src/litellm/process.js';
import { FILTER_DIMENSIONS } from '../../src/store/ledger.js';
import { policyJsonSchema } from '../../src/policy/json-schema.js';
import { EXAMPLE_POLICIES, FIXTURES } from '../helpers/policies.js';
import { testKey } from '../helpers/secrets.js';

async function cli(args: string[], cwd = process.cwd()) {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, {
    stdout: (t) => (stdout += t),
    stderr: (t) => (stderr += t),
    cwd,
  });
  return { code, stdout, stderr };
}

describe('modelcenter CLI', () => {
  it('validate: exit 0 and a summary on valid policies', async () => {
    const result = await cli(['validate', '--policies', EXAMPLE_POLICIES]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(
      /^ok: 4 file\(s\), 5 providers, 8 models, 5 profiles, \d+ deployments/,
    );
  });

  it('validate: exit 1 and every problem on invalid policies', async () => {
    const result = await cli([
      'validate',
      '--policies',
      path.join(FIXTURES, 'invalid', 'duplicate-across-files'),
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('model "llama" is defined twice');
    expect(result.stderr).toContain('1 error(s): nothing was rendered');
  });

  it('validate --format json: machine-readable findings', async () => {
    const result = await cli([
      'validate',
      '--format',
      'json',
      '--policies',
      path.join(FIXTURES, 'invalid', 'duplicate-across-files'),
    ]);
    expect(result.code).toBe(1);
    const body = JSON.parse(result.stdout) as {
      valid: boolean;
      errors: { line: number; path: string }[];
    };
    expect(body.valid).toBe(false);
    expect(body.errors[0]).toMatchObject({ line: 5, path: 'models.llama' });
  });

  it('exit 1 with a clear message for a missing policies directory or an unknown command', async () => {
    const missing = await cli(['validate', '--policies', '/nonexistent/policies']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('policies directory /nonexistent/policies does not exist');
    const unknown = await cli(['frobnicate']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
  });

  it('render --out writes the config; diff then reports no changes; an edit shows as a diff with exit 3', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mc-cli-'));
    // Its own policies, not the examples: users edit those.
    await mkdir(path.join(dir, 'policies'));
    await writeFile(
      path.join(dir, 'policies', 'models.yaml'),
      `providers:
  openai: { kind: openai, credential: env:OPENAI_API_KEY }
models:
  gpt-4o:
    provider: openai
    capabilities: [chat]
    context_window: 128000
    pricing: { input_per_mtok: 2.5, output_per_mtok: 10 }
`,
    );
    expect((await cli(['render', '--out', 'litellm/config.yaml'], dir)).code).toBe(0);
    const written = await readFile(path.join(dir, 'litellm', 'config.yaml'), 'utf8');
    expect(written).toBe((await cli(['render'], dir)).stdout);

    const clean = await cli(['diff', '--exit-code'], dir);
    expect(clean.code).toBe(0);
    expect(clean.stdout).toContain('no changes');

    const models = path.join(dir, 'policies', 'models.yaml');
    await writeFile(
      models,
      (await readFile(models, 'utf8')).replace('input_per_mtok: 2.5', 'input_per_mtok: 5'),
    );
    const changed = await cli(['diff', '--exit-code'], dir);
    expect(changed.code).toBe(3);
    expect(changed.stdout).toContain('-      input_cost_per_token: 0.0000025');
    expect(changed.stdout).toContain('+      input_cost_per_token: 0.000005');
    expect((await cli(['diff'], dir)).code).toBe(0);
  });

  it('the committed JSON Schema for editors matches the policy schema', async () => {
    const committed = JSON.parse(
      await readFile(path.join(EXAMPLE_POLICIES, '..', 'docs', 'policy.schema.json'), 'utf8'),
    ) as unknown;
    expect(committed).toEqual(policyJsonSchema());
    const result = await cli(['schema']);
    expect(JSON.parse(result.stdout)).toMatchObject({
      title: 'Model Center policy file',
      type: 'object',
    });
  });

  it('apply with no service running: exit 2 and a message that says what to start', async () => {
    const port = await freePort();
    let stderr = '';
    const code = await runCli(
      ['apply'],
      { stdout: () => undefined, stderr: (t) => (stderr += t), cwd: process.cwd() },
      {
        MODELCENTER_URL: `http://127.0.0.1:${port}`,
        MODELCENTER_TOKEN: 'mc-any-token-for-this-test',
      },
    );
    expect(code).toBe(2);
    expect(stderr).toMatch(
      new RegExp(
        `service at http://127.0.0.1:${port} did not answer \\(.*ECONNREFUSED.*is "modelcenter serve" running`,
      ),
    );
  });
});

/** Every verb and subcommand with the flags it has always taken (README, CLI). */
const VERBS: Record<string, string[]> = {
  validate: ['--policies', '--format'],
  render: ['--policies', '--out'],
  diff: ['--policies', '--config', '--exit-code'],
  schema: ['--out'],
  serve: ['--policies', '--config'],
  up: ['--policies', '--config'],
  apply: ['--force', '--format'],
  plan: ['--format'],
  reload: ['--format'],
  rollback: ['--to', '--format'],
  status: ['--policies', '--config', '--format', '--port'],
  spend: [],
  'spend report': [
    '--group-by',
    '--since',
    '--until',
    '--format',
    '--sort',
    '--limit',
    '--policies',
    ...FILTER_DIMENSIONS.map((d) => `--${d}`),
  ],
  'spend show': ['--format'],
  'spend ingest': ['--config'],
  'spend budgets': ['--format', '--policies'],
  'spend backfill': ['--since', '--until', '--url', '--format', '--config'],
  completion: [],
  credentials: [],
  'credentials rotate': ['--value-from-file', '--value-from-env', '--grace', '--now', '--format'],
  'credentials status': ['--format'],
  'credentials rollback': [],
  keys: [],
  'keys audit': ['--since', '--subject', '--rotation', '--format'],
  'keys rotate-master': [
    '--value-from-stdin',
    '--value-from-file',
    '--value-from-env',
    '--grace',
    '--now',
    '--format',
  ],
  'keys read-master': [],
};

describe('modelcenter CLI: help, errors, completion', () => {
  it.each(Object.entries(VERBS))('%s --help: exit 0 and every flag listed', async (verb, flags) => {
    const result = await cli([...verb.split(' '), '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`Usage: modelcenter ${verb.replace(/^up$/, 'serve')}`);
    for (const flag of [...flags, '--help']) expect(result.stdout).toContain(flag);
  });

  it('modelcenter --help and help <verb> list the verbs and exit 0; no verb at all exits 1', async () => {
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    for (const verb of Object.keys(VERBS).filter((v) => !v.includes(' ')))
      expect(help.stdout).toMatch(new RegExp(`^  ${verb}\\b|\\|${verb}\\b`, 'm'));
    expect(help.stdout).toContain('Exit codes: 0 ok, 1 invalid input');
    const helpSpend = await cli(['help', 'spend']);
    expect(helpSpend.code).toBe(0);
    expect(helpSpend.stdout).toContain('backfill');
    expect((await cli([])).code).toBe(1);
  });

  it('an unknown flag, subcommand or value exits 1 naming it and where the usage is', async () => {
    const flag = await cli(['validate', '--frobnicate']);
    expect(flag.code).toBe(1);
    expect(flag.stderr).toContain('modelcenter validate: unknown option "--frobnicate"');
    expect(flag.stderr).toContain('(modelcenter validate --help for usage)');
    const spendFlag = await cli(['spend', 'report', '--colour', 'red']);
    expect(spendFlag.code).toBe(1);
    expect(spendFlag.stderr).toContain('unknown option "--colour"');
    const sub = await cli(['spend', 'frobnicate']);
    expect(sub.code).toBe(1);
    expect(sub.stderr).toContain('modelcenter spend: unknown subcommand "frobnicate"');
    const value = await cli(['validate', '--format', 'xml']);
    expect(value.code).toBe(1);
    expect(value.stderr).toContain('"xml" is invalid');
    const missing = await cli(['render', '--out']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('"--out <file>" argument missing');
  });

  it.each(['bash', 'zsh'])('completion %s: a script naming every verb', async (shell) => {
    const result = await cli(['completion', shell]);
    expect(result.code).toBe(0);
    for (const verb of Object.keys(VERBS)) expect(result.stdout).toContain(verb.split(' ').at(-1));
    expect(result.stdout).toContain('complete -F _modelcenter_complete modelcenter');
    if (shell === 'zsh') expect(result.stdout).toContain('bashcompinit');
  });

  it('the bash completion completes verbs, subcommands, flags and flag values', async () => {
    const script = (await cli(['completion'])).stdout;
    const complete = (...words: string[]): string =>
      spawnSync(
        'bash',
        [
          '-c',
          `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _modelcenter_complete; echo "\${COMPREPLY[*]}"`,
        ],
        { encoding: 'utf8' },
      ).stdout.trim();
    expect(complete('modelcenter', 're')).toBe('render reload');
    expect(complete('modelcenter', 'spend', '')).toContain('backfill');
    expect(complete('modelcenter', 'spend', 'report', '--so')).toBe('--sort');
    expect(complete('modelcenter', 'spend', 'report', '--format', '')).toBe('table json csv');
    expect(complete('modelcenter', 'up', '--p')).toBe('--policies');
  });
});

describe('modelcenter credentials rotate: the new value never on the command line', () => {
  it('a value given as an argument is refused without being echoed; no value at all is explained', async () => {
    const value = testKey();
    const asArgument = await cli(['credentials', 'rotate', 'openai', value]);
    expect(asArgument.code).toBe(1);
    expect(asArgument.stderr).toMatch(/too many arguments/);
    expect(asArgument.stderr + asArgument.stdout).not.toContain(value);
    let stderr = '';
    const empty = await runCli(
      ['credentials', 'rotate', 'openai'],
      {
        stdout: () => undefined,
        stderr: (t) => (stderr += t),
        cwd: process.cwd(),
        readStdin: () => Promise.resolve('\n'),
      },
      { MODELCENTER_TOKEN: 'unused' },
    );
    expect(empty).toBe(1);
    expect(stderr).toMatch(/no new value: pipe it on stdin/);
  });
});
