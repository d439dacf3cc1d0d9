import { describe, expect, it } from 'vitest';
import { buildFromDir, buildFromTexts } from '../../src/compile/build.js';
import { formatProblem } from '../../src/policy/problems.js';
import { EXAMPLE_POLICIES, fixture } from '../helpers/policies.js';

const errorsOf = async (name: string) =>
  buildFromTexts(await fixture(name)).findings.errors.map(formatProblem);

describe('policy validation', () => {
  it('accepts the example policies in policies/ and compiles them', async () => {
    const build = await buildFromDir(EXAMPLE_POLICIES);
    expect(build.findings.errors.map(formatProblem)).toEqual([]);
    expect(build.config?.model_list.length).toBeGreaterThan(10);
    expect([...build.set.profiles.keys()]).toEqual(['cheap', 'deep', 'embed', 'fast', 'private']);
    expect(build.set.callers.size).toBe(2);
    expect(build.set.goals.size).toBe(2);
    expect(build.set.budgets).toHaveLength(1);
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
