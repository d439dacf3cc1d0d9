import fc from 'fast-check';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { buildFromTexts, type Build } from '../../src/compile/build.js';
import { decodePolicyFile, type LoadedText } from '../../src/policy/load.js';
import { formatProblem } from '../../src/policy/problems.js';
import { testKey } from '../helpers/secrets.js';

/**
 * Property tests for the loader (STYLE.md §18): whatever bytes or YAML a policy file holds,
 * validation answers with findings located in the file (or a config), never with an exception,
 * and within a time bound. Inputs are small, so the bound is generous for a loaded 2-core machine.
 */
const TIME_BOUND_MS = 2000;
/** A literal key the generated policies may hold (made at test time, never committed). */
const LITERAL_KEY = testKey('sk-');

function checkedBuild(files: LoadedText[]): Build {
  const start = performance.now();
  const build = buildFromTexts(files);
  const elapsed = performance.now() - start;
  expect(elapsed).toBeLessThan(TIME_BOUND_MS);
  expect(Array.isArray(build.findings.errors) && Array.isArray(build.findings.warnings)).toBe(true);
  const names = new Set(files.map((f) => f.name));
  for (const problem of [...build.findings.errors, ...build.findings.warnings]) {
    expect(names.has(problem.file), formatProblem(problem)).toBe(true);
    expect(Number.isInteger(problem.line) && problem.line >= 1, formatProblem(problem)).toBe(true);
    expect(Number.isInteger(problem.col) && problem.col >= 1, formatProblem(problem)).toBe(true);
    expect(problem.message.length, formatProblem(problem)).toBeGreaterThan(0);
    expect(problem.hint.length, formatProblem(problem)).toBeGreaterThan(0);
    expect(formatProblem(problem)).toMatch(/^[^:]+:\d+:\d+ .+ — .+/s);
  }
  if (build.findings.errors.length === 0) expect(typeof build.yaml).toBe('string');
  else expect(build.yaml).toBeUndefined();
  return build;
}

/** Pieces of YAML syntax and policy vocabulary, hostile ones included. */
const TOKENS = [
  'providers:',
  'models:',
  'profiles:',
  'litellm:',
  'litellm_settings:',
  'x-defaults:',
  '\n',
  '\n  ',
  '\n    ',
  '  ',
  ': ',
  '- ',
  '[',
  ']',
  '{',
  '}',
  ', ',
  '&a ',
  '&b ',
  '*a',
  '*b',
  '<<: ',
  '<<: *a',
  '"',
  "'",
  '# c',
  '\t',
  '? ',
  '| ',
  '> ',
  '---\n',
  '...\n',
  '%YAML 1.2\n',
  '!!binary ',
  '!!str ',
  '!custom ',
  'o: { kind: ollama }',
  'kind: openai',
  'credential: env:K',
  'credential: env:LITELLM_MASTER_KEY',
  `credential: ${LITERAL_KEY}`,
  'base_url: http://u:p@h/?api_key=x',
  'provider: o',
  'capabilities: [chat]',
  'requires: [chat]',
  'fallback: [p]',
  'm',
  'p',
  '__proto__',
  'constructor',
  '1e400',
  '-0',
  '.nan',
  '0x1F',
  '99999999999999999999',
  'null',
  '~',
  'true',
  '\u0000',
  '\u00e9',
  '\ud83d\ude00',
  '\ud800',
];

const policyishText = fc
  .array(fc.oneof(fc.constantFrom(...TOKENS), fc.string({ maxLength: 8 })), { maxLength: 80 })
  .map((parts) => parts.join(''));

/** A policy-shaped object with random, often wrong, values. */
const value = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom('env:K', 'env:LITELLM_MASTER_KEY', LITERAL_KEY, 'o', 'chat'),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.constantFrom('chat', 'tools', 'o', 'p', 'local', 'quality'), { maxLength: 3 }),
);
const policyObject = fc.record(
  {
    providers: fc.dictionary(
      fc.constantFrom('o', 'q', 'constructor', 'Bad'),
      fc.record(
        {
          kind: fc.constantFrom('ollama', 'openai', 'openai_compatible', 'vllm', 'nope'),
          credential: value,
          base_url: fc.constantFrom(
            'http://h:1/v1',
            'http://u:pw@h/v1',
            'https://h/?key=abc123',
            'x',
          ),
          params: fc.dictionary(fc.string({ maxLength: 6 }), value, { maxKeys: 3 }),
        },
        { requiredKeys: ['kind'] },
      ),
      { maxKeys: 2 },
    ),
    models: fc.dictionary(
      fc.constantFrom('m', 'n', 'valueof', 'x y'),
      fc.record(
        {
          provider: fc.constantFrom('o', 'q', 'missing'),
          capabilities: fc.array(fc.constantFrom('chat', 'tools', 'embedding', 'bogus'), {
            maxLength: 3,
          }),
          context_window: value,
          pricing: fc.record({ input_per_mtok: value, output_per_mtok: value }),
          id: value,
        },
        { requiredKeys: ['provider'] },
      ),
      { maxKeys: 3 },
    ),
    profiles: fc.dictionary(
      fc.constantFrom('p', 'r'),
      fc.record(
        {
          requires: fc.array(fc.constantFrom('chat', 'tools'), { maxLength: 2 }),
          fallback: fc.array(fc.constantFrom('p', 'r', 'zz'), { maxLength: 2 }),
          params: fc.record({ temperature: value }, { requiredKeys: [] }),
        },
        { requiredKeys: [] },
      ),
      { maxKeys: 2 },
    ),
    litellm: fc.record(
      { litellm_settings: fc.dictionary(fc.string({ maxLength: 8 }), value, { maxKeys: 3 }) },
      { requiredKeys: [] },
    ),
  },
  { requiredKeys: [] },
);

describe('policy loader properties', () => {
  it('any bytes: findings at file:line or a config, never an exception', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        checkedBuild([decodePolicyFile('p.yaml', bytes)]);
      }),
      { numRuns: Number(process.env.FC_RUNS ?? 400) },
    );
  });

  it('YAML-like text built from syntax and policy tokens: findings or a config, never an exception', () => {
    fc.assert(
      fc.property(policyishText, policyishText, (a, b) => {
        checkedBuild([
          { name: 'a.yaml', text: a },
          { name: 'b.yaml', text: b },
        ]);
      }),
      { numRuns: Number(process.env.FC_RUNS ?? 600) },
    );
  });

  it('policy-shaped files with random values: no literal secret and no reserved variable reaches the config', () => {
    fc.assert(
      fc.property(policyObject, (policy) => {
        const build = checkedBuild([{ name: 'p.yaml', text: stringify(policy) }]);
        if (build.yaml === undefined) return;
        expect(build.yaml).not.toContain(LITERAL_KEY);
        // Only general_settings.master_key names the master key.
        expect(build.yaml.match(/os\.environ\/LITELLM_MASTER_KEY/g)).toHaveLength(1);
        expect(build.yaml).not.toMatch(/u:pw@|key=abc123/);
      }),
      { numRuns: Number(process.env.FC_RUNS ?? 400) },
    );
  });
});
