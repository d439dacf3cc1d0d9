import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildFromDir, buildFromTexts } from '../../src/compile/build.js';
import { formatProblem } from '../../src/policy/problems.js';
import { EXAMPLE_POLICIES, FIXTURE_SECRETS, fixture } from '../helpers/policies.js';

const errorsOf = async (name: string) =>
  buildFromTexts(await fixture(name)).findings.errors.map(formatProblem);

describe('policy validation', () => {
  it('accepts the example policies in policies/ and compiles them', async () => {
    const build = await buildFromDir(EXAMPLE_POLICIES);
    expect(build.findings.errors.map(formatProblem)).toEqual([]);
    // Users edit the examples (the README invites it): hold them to validity, not to their contents.
    const groups = new Set(build.config?.model_list.map((d) => d.model_name));
    expect(build.set.profiles.size).toBeGreaterThan(0);
    for (const profile of build.set.profiles.keys()) expect(groups).toContain(profile);
  });

  it.each([
    [
      'invalid/bad-yaml.yaml',
      [
        'invalid/bad-yaml.yaml:4:1 YAML All mapping items must start at the same column — fix the YAML syntax (indentation, quoting, a missing ":")',
      ],
    ],
    [
      'invalid/unknown-key.yaml',
      [
        'invalid/unknown-key.yaml:5:5 providers.openai.credentail: unknown key "credentail" — did you mean "credential"?',
      ],
    ],
    [
      'invalid/unknown-references.yaml',
      [
        'invalid/unknown-references.yaml:7:5 models.gpt-4o.provider: unknown provider "opnai" — did you mean "openai"?',
        'invalid/unknown-references.yaml:16:16 profiles.fast.fallback[0]: unknown profile "deeep" — define profile "deeep" or use one of: fast',
        'invalid/unknown-references.yaml:19:22 callers.bot.profiles[1]: unknown profile "slow" — define profile "slow" or use one of: fast',
        'invalid/unknown-references.yaml:23:5 goals.report.owner: unknown caller "nobody" — define caller "nobody" or use one of: bot',
        'invalid/unknown-references.yaml:25:14 budgets[0].scope.provider: unknown provider "anthropic" — define provider "anthropic" or use one of: openai',
      ],
    ],
    [
      'invalid/duplicate-across-files',
      [
        'invalid/duplicate-across-files/b.yaml:5:3 models.llama: model "llama" is defined twice: here and at invalid/duplicate-across-files/a.yaml:5:3 — keep one definition, or rename one of them',
      ],
    ],
    [
      'invalid/unsatisfiable-profile.yaml',
      [
        'invalid/unsatisfiable-profile.yaml:10:3 profiles.deep: no model satisfies profile "deep" (1 lacks capability "tools") — add a matching model to the catalog, or relax requires/min_context/only',
      ],
    ],
    [
      'invalid/fallback-cycle.yaml',
      [
        'invalid/fallback-cycle.yaml:11:5 profiles.a.fallback: fallback cycle: a → b → c → a — remove one fallback so the chain ends',
      ],
    ],
    [
      'invalid/invalid-duration.yaml',
      [
        'invalid/invalid-duration.yaml:3:12 callers.bot.key.rotate_every: "30 days" is not valid — a duration is a whole number and a unit: 30s, 15m, 24h, 7d or 2w',
        'invalid/invalid-duration.yaml:7:24 goals.report.budget.period: "1 week" is not valid — a duration is a whole number and a unit: 30s, 15m, 24h, 7d or 2w',
      ],
    ],
    [
      'invalid/duplicate-deployment-id.yaml',
      [
        'invalid/duplicate-deployment-id.yaml:8:3 models.llama-v2: deployment id "llama" from model "llama-v2" is also produced by model "llama" — rename the model or profile so each deployment id is unique',
      ],
    ],
    [
      'invalid/alias-expansion-bomb.yaml',
      [
        'invalid/alias-expansion-bomb.yaml:13:13 litellm.litellm_settings.laughs: aliases expand this file to 9.3e+8 nodes and 2355.4 MB of text, more than the 1,000,000 nodes or 16.0 MB allowed (*i alone is 4.4e+8 nodes; an alias expansion bomb?) — use fewer aliases of large nodes, or write the content out',
      ],
    ],
    [
      'invalid/alias-loop.yaml',
      [
        'invalid/alias-loop.yaml:4:14 litellm.litellm_settings.loop.inner: alias *self refers to a node that contains it (an endless loop) — point the alias at a node outside the one it sits in',
      ],
    ],
    [
      'invalid/merge-key-not-a-mapping.yaml',
      [
        'invalid/merge-key-not-a-mapping.yaml:5:5 models.llama: a merge key (<<) needs a mapping, an alias of one (*defaults) or a list of those — write <<: *name where &name is on a mapping',
      ],
    ],
    [
      'invalid/proto-key.yaml',
      [
        'invalid/proto-key.yaml:4:3 models.__proto__: the key "__proto__" cannot be used: JavaScript reserves it, so it would be dropped — rename it (names start with a lowercase letter or a digit)',
      ],
    ],
    [
      'invalid/duplicate-key.yaml',
      [
        'invalid/duplicate-key.yaml:7:3 models.llama: key "llama" appears twice in this mapping (first at line 4) — keep one of them',
      ],
    ],
    [
      'invalid/number-overflow.yaml',
      [
        'invalid/number-overflow.yaml:7:21 models.llama.context_window: 1e400 is too large to be a number (it would read as infinity) — write a smaller number, or quote it if it is text',
        'invalid/number-overflow.yaml:8:17 models.llama.max_output: 123456789012345678901234567890 is beyond the largest exact integer (9007199254740991); it would be changed when read — write a smaller number, or quote it if it is text',
        'invalid/number-overflow.yaml:12:20 goals.report.budget.usd: .inf is infinite, which no policy field accepts — write a smaller number, or quote it if it is text',
      ],
    ],
    [
      'invalid/deep-nesting.yaml',
      [
        'invalid/deep-nesting.yaml:3:74 litellm.litellm_settings.nested[0][0][0][0][0].…: nested more than 64 levels deep — flatten it: policies need only a few levels of nesting',
      ],
    ],
    [
      'invalid/not-utf8.yaml',
      [
        'invalid/not-utf8.yaml:6:15 the file is not valid UTF-8 (byte 0xe9) — save the file as UTF-8: policy files are UTF-8 text',
      ],
    ],
    [
      'invalid/reserved-credential.yaml',
      [
        'invalid/reserved-credential.yaml:4:5 providers.openai.credential: env:LITELLM_MASTER_KEY names one of Model Center\'s own secrets (LiteLLM\'s master key, admin access to the proxy): LiteLLM would send it to provider "openai" as its API key — give the provider a key of its own in another variable: credential: env:PROVIDER_API_KEY',
        'invalid/reserved-credential.yaml:8:5 providers.box.credential: env:MODELCENTER_ADMIN_TOKENS names one of Model Center\'s own secrets (Model Center\'s admin API tokens): LiteLLM would send it to provider "box" as its API key — give the provider a key of its own in another variable: credential: env:PROVIDER_API_KEY',
        'invalid/reserved-credential.yaml:11:5 providers.vault.credential: env:MODELCENTER_SECRET_OPENAI_PROD names one of Model Center\'s own secrets (the secret store\'s copy of a secret, which policies name as secret:openai-prod): LiteLLM would send it to provider "vault" as its API key — write secret:openai-prod',
        "invalid/reserved-credential.yaml:20:3 cache.password: env:LITELLM_SALT_KEY names one of Model Center's own secrets (the key LiteLLM encrypts stored credentials with): LiteLLM would send it to the cache server — use a variable that holds only what this setting needs",
        "invalid/reserved-credential.yaml:23:5 litellm.general_settings.alerting_webhook_url: os.environ/MODELCENTER_LEDGER_URL names one of Model Center's own secrets (the spend ledger's database URL, password included): LiteLLM would hand it to whatever this setting configures — use a variable that holds only what this setting needs",
      ],
    ],
    [
      'invalid/secret-in-url-query.yaml',
      [
        'invalid/secret-in-url-query.yaml:4:5 providers.box.base_url: base_url carries a secret in its query string (api_key=…(50 chars)) — remove it from the URL and use credential: env:NAME',
      ],
    ],
    [
      'invalid/secret-in-header.yaml',
      [
        'invalid/secret-in-header.yaml:8:9 providers.openai.params.extra_headers.Authorization: a literal secret is not allowed in header "Authorization" (Bearer …(57 chars)) — put the value in an environment variable and write env:NAME as the whole value',
        'invalid/secret-in-header.yaml:9:9 providers.openai.params.extra_headers.x-api-key: a literal secret is not allowed in header "x-api-key" (…(14 chars)) — put the value in an environment variable and write env:NAME as the whole value',
      ],
    ],
    [
      'invalid/secret-in-passthrough.yaml',
      [
        'invalid/secret-in-passthrough.yaml:7:5 litellm.general_settings.database_url: database_url carries credentials (user:password@) — put the value in an environment variable and write os.environ/NAME (LiteLLM reads it at start)',
        'invalid/secret-in-passthrough.yaml:10:5 litellm.litellm_settings.langfuse_secret_key: a literal secret is not allowed in field "langfuse_secret_key" (sk-…(38 chars)) — put the value in an environment variable and write os.environ/NAME (LiteLLM reads it at start)',
      ],
    ],
  ])(
    '%s: reports every problem with file:line:col, field, cause and fix',
    async (name, expected) => {
      expect(await errorsOf(name)).toEqual(expected);
    },
  );

  it('rejects a literal secret without echoing it, and credentials inside a URL', async () => {
    const errors = await errorsOf('invalid/literal-secret.yaml');
    expect(errors).toEqual([
      'invalid/literal-secret.yaml:4:5 providers.openai.credential: a literal secret is not allowed here (…(15 chars)) — write env:VARIABLE_NAME (an upper-case environment variable) or secret:name (the secret store), and put the value there',
      'invalid/literal-secret.yaml:7:5 providers.box.base_url: base_url carries credentials (user:password@) — remove them from the URL and use credential: env:NAME',
    ]);
    expect(errors.join('\n')).not.toContain('sk-live');
    expect(errors.join('\n')).not.toContain('hunter2');
  });

  it('checks the spend section like the others: unknown keys, wrong types and a second definition name the file and field', () => {
    const errors = (texts: { name: string; text: string }[]) =>
      buildFromTexts(texts).findings.errors.map(formatProblem);
    expect(
      errors([{ name: 'policies/spend.yaml', text: 'spend:\n  keep_contents: true\n' }]),
    ).toEqual([
      'policies/spend.yaml:2:3 spend.keep_contents: unknown key "keep_contents" — did you mean "keep_content"?',
    ]);
    expect(
      errors([{ name: 'policies/spend.yaml', text: 'spend:\n  keep_content: always\n' }]),
    ).toEqual([
      'policies/spend.yaml:2:3 spend.keep_content: expected a boolean, got string "always" — write a boolean here',
    ]);
    expect(
      errors([
        { name: 'a.yaml', text: 'spend: { keep_content: true }\n' },
        { name: 'b.yaml', text: 'spend:\n  keep_content: false\n' },
      ]),
    ).toEqual([
      'b.yaml:1:1 spend: section "spend" is defined twice: here and at a.yaml:1:1 — keep one definition, or rename one of them',
    ]);
    const set = buildFromTexts([{ name: 'p.yaml', text: 'spend: {}\n' }]).set;
    expect(set.spend?.value).toEqual({ keep_content: false });
  });

  it('produces no config at all when any file is invalid', async () => {
    const build = buildFromTexts(await fixture('invalid/unknown-key.yaml'));
    expect(build.config).toBeUndefined();
    expect(build.yaml).toBeUndefined();
  });

  it.each([
    [
      'kind openai without a credential',
      'providers:\n  openai:\n    kind: openai\n',
      'kind "openai" needs a credential',
    ],
    [
      'kind vllm without a base_url',
      'providers:\n  box:\n    kind: vllm\n',
      'kind "vllm" needs a base_url',
    ],
    ['an unknown kind', 'providers:\n  x:\n    kind: openia\n', '"openia" is not allowed'],
    [
      'a malformed env reference',
      'providers:\n  o:\n    kind: openai\n    credential: env:lower_case\n',
      'malformed credential reference',
    ],
    [
      'a model name with capitals',
      'models:\n  GPT:\n    provider: o\n    capabilities: [chat]\n',
      'invalid name "GPT"',
    ],
    [
      'a missing required field',
      'models:\n  m:\n    provider: o\n',
      'missing required field "capabilities"',
    ],
    ['a redis cache without a host', 'cache:\n  type: redis\n', 'a redis cache needs a host'],
    [
      'a binary key (the yaml library would turn it into "[object Uint8Array]")',
      '? !!binary aGVsbG8=\n: 1\n',
      'p.yaml:1:12 hello: a !!binary value has no place in a policy',
    ],
    [
      'a key that is a list',
      'models:\n  ? [a, b]\n  : { provider: o, capabilities: [chat] }\n',
      'p.yaml:2:5 models: a key must be plain text, not a list, a mapping or an alias',
    ],
    [
      'nesting too deep for the YAML reader itself (one message, not one per level)',
      `x: ${'['.repeat(20_000)}${']'.repeat(20_000)}\n`,
      'YAML nests too deeply to read (far more than the 64 levels a policy may use) — flatten it',
    ],
    [
      'nesting made too deep by an alias',
      `x-a: &a ${'['.repeat(40)}1${']'.repeat(40)}\nx-b: ${'['.repeat(30)}*a${']'.repeat(30)}\n`,
      'alias *a nests this part of the file more than 64 levels deep',
    ],
    [
      'a !!set collection',
      'litellm:\n  litellm_settings: !!set { a, b }\n',
      'a !!set collection has no place in a policy',
    ],
  ])('rejects %s', (_label, text, message) => {
    const errors = buildFromTexts([{ name: 'p.yaml', text }]).findings.errors.map(formatProblem);
    expect(errors.join('\n')).toContain(message);
  });

  it('warns, without failing, about a remote model that has no pricing', () => {
    const text =
      'providers:\n  o:\n    kind: openai\n    credential: env:K\nmodels:\n  m:\n    provider: o\n    capabilities: [chat]\n';
    const build = buildFromTexts([{ name: 'p.yaml', text }]);
    expect(build.yaml).toBeDefined();
    expect(build.findings.warnings.map(formatProblem)).toEqual([
      "p.yaml:6:3 models.m: remote model without pricing: spend for it falls back to LiteLLM's own price table, or 0 — add pricing: { input_per_mtok: …, output_per_mtok: … }",
    ]);
  });
});

describe('unusual policy files that must work', () => {
  const openai = 'providers:\n  openai: { kind: openai, credential: env:OPENAI_API_KEY }\n';

  it('accepts a catalog of 150 models sharing one pricing anchor (the yaml library alone refuses after 100)', () => {
    const models = Array.from({ length: 150 }, (_, i) =>
      i === 0
        ? '  m0: { provider: openai, capabilities: [chat], pricing: &p { input_per_mtok: 2.5, output_per_mtok: 10 } }'
        : `  m${i}: { provider: openai, capabilities: [chat], pricing: *p }`,
    );
    const build = buildFromTexts([
      { name: 'p.yaml', text: `${openai}models:\n${models.join('\n')}\n` },
    ]);
    expect(build.findings.errors.map(formatProblem)).toEqual([]);
    expect(build.config?.model_list).toHaveLength(150);
    expect(
      build.config?.model_list.every((d) => d.litellm_params.input_cost_per_token === 0.0000025),
    ).toBe(true);
  });

  it('reads merge keys, with the mapping own keys winning, and x- top-level keys as a place for anchors', () => {
    const text = `${openai}x-defaults: &defaults
  provider: openai
  capabilities: [chat, tools]
  pricing: { input_per_mtok: 1, output_per_mtok: 2 }
models:
  a:
    <<: *defaults
    context_window: 1000
  b:
    <<: *defaults
    capabilities: [chat]
`;
    const build = buildFromTexts([{ name: 'p.yaml', text }]);
    expect(build.findings.errors.map(formatProblem)).toEqual([]);
    expect(build.set.models.get('a')?.value).toMatchObject({
      provider: 'openai',
      capabilities: ['chat', 'tools'],
      context_window: 1000,
    });
    expect(build.set.models.get('b')?.value.capabilities).toEqual(['chat']);
  });

  it('points a problem inside a merged mapping at the line where the value was written', () => {
    const text = `${openai}x-defaults: &defaults
  provider: openai
  capabilities: [chat]
  pricing: { input_per_mtok: -1, output_per_mtok: 2 }
models:
  a:
    <<: *defaults
`;
    expect(buildFromTexts([{ name: 'p.yaml', text }]).findings.errors.map(formatProblem)).toEqual([
      'p.yaml:6:14 models.a.pricing.input_per_mtok: value out of range: expected number to be >=0 — change the value to fit the range',
    ]);
  });

  it('serves names that are also JavaScript object properties (constructor, valueof, hasownproperty)', () => {
    const text = `${openai}models:
  constructor: { provider: openai, capabilities: [chat], pricing: { input_per_mtok: 1, output_per_mtok: 1 } }
profiles:
  hasownproperty: { requires: [chat], fallback: [valueof] }
  valueof: { requires: [chat] }
litellm:
  litellm_settings:
    constructor: 1
`;
    const build = buildFromTexts([{ name: 'p.yaml', text }]);
    expect(build.findings.errors.map(formatProblem)).toEqual([]);
    expect(build.config?.model_list.map((d) => d.model_info.id)).toEqual([
      'constructor',
      'hasownproperty/constructor',
      'valueof/constructor',
    ]);
    expect(build.config?.router_settings.fallbacks).toEqual([{ hasownproperty: ['valueof'] }]);
    expect(build.config?.litellm_settings.constructor).toBe(1);
  });

  it('refuses an expansion bomb at the alias in well under a second', async () => {
    const [bomb] = await fixture('invalid/alias-expansion-bomb.yaml');
    const start = performance.now();
    const build = buildFromTexts([bomb!]);
    const elapsed = performance.now() - start;
    expect(build.findings.errors.map((p) => `${p.line}:${p.col}`)).toEqual(['13:13']);
    expect(elapsed).toBeLessThan(1000);
  });

  it('refuses a 2 MB mapping copied by 95 aliases (it rendered a 193 MB config) at the first alias', () => {
    const keys = Array.from(
      { length: 40_000 },
      (_, i) => `      k${i}: value-${i}-xxxxxxxxxxxxxxxxxx`,
    );
    const uses = Array.from({ length: 95 }, (_, i) => `    copy${i}: *big`);
    const text = `litellm:\n  litellm_settings:\n    big: &big\n${keys.join('\n')}\n${uses.join('\n')}\n`;
    const errors = buildFromTexts([{ name: 'p.yaml', text }]).findings.errors;
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ line: 40_004, path: 'litellm.litellm_settings.copy0' });
    expect(errors[0]?.message).toMatch(
      /^aliases expand this file to 7\.7e\+6 nodes and 129\.8 MB of text/,
    );
  });

  it('refuses a file over the size limit, and a config that would render over its limit, naming the cause', () => {
    const huge = buildFromTexts([{ name: 'p.yaml', text: `# ${'x'.repeat(5 * 1024 * 1024)}\n` }]);
    expect(huge.findings.errors.map(formatProblem)).toEqual([
      'p.yaml:1:1 the file is 5.0 MB, more than the 4.0 MB a policy file may hold — split it into several files under policies/',
    ]);
    const models = Array.from(
      { length: 400 },
      (_, i) =>
        `  m${i}: { provider: openai, capabilities: [chat], pricing: { input_per_mtok: 1, output_per_mtok: 1 } }`,
    );
    const text = `providers:\n  openai:\n    kind: openai\n    credential: env:OPENAI_API_KEY\n    params: { organization: "${'o'.repeat(100_000)}" }\nmodels:\n${models.join('\n')}\n`;
    const build = buildFromTexts([{ name: 'p.yaml', text }]);
    expect(build.yaml).toBeUndefined();
    expect(build.findings.errors.map(formatProblem)).toEqual([
      "p.yaml:5:5 providers.openai.params: the rendered LiteLLM config would be more than 32.0 MB (400 deployments) — shorten params: they are copied into each of the provider's 400 deployments",
    ]);
  });

  it('never echoes a secret: the fixtures with secrets show only masked forms', async () => {
    for (const name of [
      'invalid/secret-in-url-query.yaml',
      'invalid/secret-in-header.yaml',
      'invalid/secret-in-passthrough.yaml',
      'invalid/literal-secret.yaml',
    ]) {
      const text = (await errorsOf(name)).join('\n');
      expect(text).not.toMatch(/hunter2|0123456789|sk-live-example/);
      for (const secret of Object.values(FIXTURE_SECRETS)) expect(text).not.toContain(secret);
    }
    const key = `sk-proj-${randomBytes(13).toString('hex')}`; // 34 characters
    const kind = buildFromTexts([
      { name: 'p.yaml', text: `providers:\n  o: { kind: ${key} }\n` },
    ]).findings.errors.map(formatProblem);
    expect(kind.join('\n')).not.toContain(key);
    expect(kind[0]).toContain('providers.o.kind: "sk-…(34 chars)" is not allowed');
  });

  it('keeps env references allowed where they were, and lets general_settings.database_url name DATABASE_URL', () => {
    const text = `providers:
  openai:
    kind: openai
    credential: env:OPENAI_API_KEY
    params: { organization: env:OPENAI_ORG, extra_headers: { x-api-key: env:GATEWAY_KEY } }
  vault: { kind: anthropic, credential: secret:anthropic-prod }
models:
  gpt-4o: { provider: openai, capabilities: [chat], pricing: { input_per_mtok: 2.5, output_per_mtok: 10 } }
cache: { type: redis, host: redis.internal, password: env:REDIS_PASSWORD }
litellm:
  general_settings: { database_url: os.environ/DATABASE_URL, store_model_in_db: true }
  litellm_settings: { key_management_system: azure_key_vault, litellm_key_header_name: X-Litellm-Key }
`;
    const build = buildFromTexts([{ name: 'p.yaml', text }]);
    expect(build.findings.errors.map(formatProblem)).toEqual([]);
    expect(build.config?.model_list[0]?.litellm_params).toMatchObject({
      organization: 'os.environ/OPENAI_ORG',
      extra_headers: { 'x-api-key': 'os.environ/GATEWAY_KEY' },
    });
  });
});

describe('reading the policies directory', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'mc-policy-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const model = (name: string) =>
    `models:\n  ${name}: { provider: ollama, capabilities: [chat] }\n`;

  it('follows symbolic links inside the policies directory and refuses, by name, those leading outside or nowhere', async () => {
    const dir = path.join(root, 'policies');
    const outside = path.join(root, 'elsewhere');
    await mkdir(path.join(dir, 'shared'), { recursive: true });
    await mkdir(outside);
    await writeFile(path.join(dir, 'providers.yaml'), 'providers:\n  ollama: { kind: ollama }\n');
    await writeFile(path.join(dir, 'shared', 'llama.yaml'), model('llama'));
    await symlink(path.join(dir, 'shared', 'llama.yaml'), path.join(dir, 'llama-link.yaml'));
    await writeFile(path.join(dir, 'shared', 'qwen.txt'), model('qwen'));
    await symlink(path.join(dir, 'shared', 'qwen.txt'), path.join(dir, 'qwen.yaml'));
    await writeFile(path.join(outside, 'secret.yaml'), model('stolen'));
    await symlink(path.join(outside, 'secret.yaml'), path.join(dir, 'outside.yaml'));
    await symlink(outside, path.join(dir, 'outside-dir'));
    await symlink(path.join(dir, 'missing.yaml'), path.join(dir, 'dangling.yaml'));

    const build = await buildFromDir(dir);
    expect(build.findings.errors.map(formatProblem)).toEqual([
      `${path.join(dir, 'dangling.yaml')}:1:1 is a symbolic link to ${path.join(dir, 'missing.yaml')}, which does not exist — point the link at an existing policy file inside the policies directory, or remove it`,
      `${path.join(dir, 'outside-dir')}:1:1 is a symbolic link to ${outside}, outside the policies directory ${dir}, so it is not read — copy the file into the policies directory (policies are versioned with it), or remove the link`,
      `${path.join(dir, 'outside.yaml')}:1:1 is a symbolic link to ${path.join(outside, 'secret.yaml')}, outside the policies directory ${dir}, so it is not read — copy the file into the policies directory (policies are versioned with it), or remove the link`,
    ]);
    // The link to a file that is also read by its own name adds nothing (no "defined twice").
    expect([...build.set.models.keys()]).toEqual(['llama', 'qwen']);
  });

  it('refuses a FIFO named like a policy file, or linked to by one, instead of blocking on it', async () => {
    await writeFile(path.join(root, 'providers.yaml'), 'providers:\n  ollama: { kind: ollama }\n');
    execFileSync('mkfifo', [path.join(root, 'pipe.yaml'), path.join(root, 'pipe')]);
    await symlink(path.join(root, 'pipe'), path.join(root, 'link-to-pipe.yaml'));
    const build = await buildFromDir(root);
    expect(build.findings.errors.map(formatProblem)).toEqual([
      `${path.join(root, 'link-to-pipe.yaml')}:1:1 is a symbolic link to ${path.join(root, 'pipe')}, which is not a regular file (a FIFO, socket or device), so it is not read — point the link at a policy file, or remove it`,
      `${path.join(root, 'pipe.yaml')}:1:1 is not a regular file (a FIFO, socket or device), so it is not read — replace it with a regular file, or rename it so it does not end in .yaml`,
    ]);
  });

  it('reports bytes that are not UTF-8 at their line and column, never as U+FFFD in the config', async () => {
    await writeFile(
      path.join(root, 'p.yaml'),
      Buffer.concat([
        Buffer.from('providers:\n  ollama: { kind: ollama }\ngoals:\n  g:\n    title: "ok '),
        Buffer.from([0xc3, 0x28]),
        Buffer.from('"\n'),
      ]),
    );
    const build = await buildFromDir(root);
    expect(build.yaml).toBeUndefined();
    expect(build.findings.errors.map(formatProblem)).toEqual([
      `${path.join(root, 'p.yaml')}:5:16 the file is not valid UTF-8 (byte 0xc3) — save the file as UTF-8: policy files are UTF-8 text`,
    ]);
  });
});
