import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/shared/errors.js';
import { discoverFromEnv, kindFromUrl } from '../../src/providers/discover-env.js';
import { catalogEntry, modelName, SelfExpansion } from '../../src/providers/expansion.js';
import { keptByDiscovery, matchesGlob } from '../../src/providers/glob.js';
import { PolicyEditor } from '../../src/providers/policy-edit.js';
import { targetFor } from '../../src/providers/target.js';
import { commitMessage } from '../../src/providers/proposal.js';
import { emptyPool, mergeSync, PoolStore, type DiscoveredModel } from '../../src/providers/pool.js';

describe('discovery globs', () => {
  it.each([
    ['gpt-4o', 'gpt-*', true],
    ['gpt-4o-realtime-preview', '*-realtime-*', true],
    ['llama3.1:8b', 'llama3.?:*', true],
    ['meta/llama-3', '*llama*', true],
    ['o1', 'gpt-*', false],
    ['gpt.4', 'gpt?4', true],
    ['gpt-4', 'gpt.4', false],
  ])('%s against %s: %s', (name, pattern, expected) => {
    expect(matchesGlob(name, pattern)).toBe(expected);
  });

  it('keeps what an include names and no exclude does', () => {
    const discovery = { include: ['gpt-*'], exclude: ['*-realtime-*'] };
    expect(keptByDiscovery('gpt-4o', discovery)).toBe(true);
    expect(keptByDiscovery('gpt-4o-realtime-preview', discovery)).toBe(false);
    expect(keptByDiscovery('dall-e-3', discovery)).toBe(false);
    expect(keptByDiscovery('dall-e-3', undefined)).toBe(true);
  });
});

describe('providers from the environment', () => {
  it('proposes a provider per registry key variable, Ollama and PROVIDER_<NAME>_URL, with references, never values', () => {
    const found = discoverFromEnv({
      GROQ_API_KEY: 'gsk-value',
      TOGETHER_API_KEY: 'tg-value',
      DASHSCOPE_API_KEY: 'ds-value',
      OLLAMA_HOST: '127.0.0.1:11434',
      PROVIDER_GPU_BOX_URL: 'http://gpu-box.internal:8000/v1',
      PROVIDER_GPU_BOX_KEY: 'box-value',
      PROVIDER_LAPTOP_URL: 'http://laptop:1234/v1',
      HOME: '/root',
    });
    expect(found.map((f) => [f.name, f.provider])).toEqual([
      ['dashscope', { kind: 'dashscope', credential: 'env:DASHSCOPE_API_KEY' }],
      [
        'gpu-box',
        {
          kind: 'openai_compatible',
          base_url: 'http://gpu-box.internal:8000/v1',
          credential: 'env:PROVIDER_GPU_BOX_KEY',
        },
      ],
      ['groq', { kind: 'groq', credential: 'env:GROQ_API_KEY' }],
      ['laptop', { kind: 'lmstudio', base_url: 'http://laptop:1234/v1' }],
      ['ollama', { kind: 'ollama', base_url: 'http://127.0.0.1:11434' }],
      ['together-ai', { kind: 'together_ai', credential: 'env:TOGETHER_API_KEY' }],
    ]);
    expect(JSON.stringify(found)).not.toMatch(/-value/);
  });

  it('proposes nothing the policies already have', () => {
    const found = discoverFromEnv(
      { GROQ_API_KEY: 'x', OPENAI_API_KEY: 'y' },
      new Map([['my-groq', { kind: 'groq', credential: 'env:GROQ_API_KEY' }]]),
    );
    expect(found.map((f) => f.name)).toEqual(['openai']);
  });

  it('guesses the kind from the URL', () => {
    expect(kindFromUrl('https://api.groq.com/openai/v1')).toBe('groq');
    expect(kindFromUrl('http://box:11434')).toBe('ollama');
    expect(kindFromUrl('http://box:8000/v1')).toBe('openai_compatible');
  });
});

describe('where a provider is called', () => {
  it('reads references, refuses a literal without repeating it, and names the missing variable', () => {
    const lookup = (ref: string) => (ref === 'env:GROQ_API_KEY' ? 'value' : undefined);
    expect(targetFor('g', { kind: 'groq', credential: 'env:GROQ_API_KEY' }, lookup)).toMatchObject({
      baseUrl: 'https://api.groq.com/openai/v1',
      key: 'value',
    });
    expect(() => targetFor('g', { kind: 'groq', credential: 'gsk-literal-1234' }, lookup)).toThrow(
      /not a reference — write env:VARIABLE_NAME/,
    );
    try {
      targetFor('g', { kind: 'groq', credential: 'gsk-literal-1234' }, lookup);
    } catch (error) {
      expect(String(error)).not.toContain('gsk-literal');
    }
    expect(() => targetFor('g', { kind: 'groq', credential: 'env:OTHER' }, lookup)).toThrow(
      /set OTHER in the controller's environment/,
    );
    expect(() => targetFor('v', { kind: 'vllm' }, lookup)).toThrow(/give base_url/);
  });

  it("never hands the controller's own secrets to a provider (POST /v1/providers/test sent the master key to any base_url)", () => {
    const secrets: Record<string, string> = {
      'env:LITELLM_MASTER_KEY': 'master-value',
      'env:MODELCENTER_ADMIN_TOKENS': 'admin-value',
      'env:DATABASE_URL': 'postgres://u:p@h/db',
    };
    const lookup = (ref: string) => secrets[ref];
    for (const credential of Object.keys(secrets)) {
      const provider = { kind: 'openai_compatible' as const, base_url: 'http://x/v1', credential };
      expect(() => targetFor('t', provider, lookup), credential).toThrow(
        /names one of Model Center's own secrets/,
      );
      try {
        targetFor('t', provider, lookup);
      } catch (error) {
        expect(error).toBeInstanceOf(InputError);
        expect(String(error)).not.toMatch(/master-value|admin-value|u:p@/);
      }
    }
  });
});

describe('the discovered pool', () => {
  const seen = (upstream: string) => ({
    upstream,
    capabilities: ['chat' as const],
    filledFrom: 'guessed' as const,
  });

  it('keeps first-seen, marks what disappeared once, and notices a return', () => {
    const first = mergeSync(emptyPool(), 'p', [seen('a'), seen('b')], 2, 'T1').pool;
    const second = mergeSync(first, 'p', [seen('a')], 1, 'T2');
    expect(second.report).toMatchObject({ added: [], disappeared: ['p/b'] });
    expect(second.pool.models['p/a']).toMatchObject({ firstSeen: 'T1', lastSeen: 'T2' });
    expect(second.pool.models['p/b']).toMatchObject({ missingSince: 'T2', lastSeen: 'T1' });
    const third = mergeSync(second.pool, 'p', [seen('a')], 1, 'T3');
    expect(third.report.disappeared).toEqual([]); // reported once
    const back = mergeSync(third.pool, 'p', [seen('a'), seen('b')], 2, 'T4');
    expect(back.report.returned).toEqual(['p/b']);
    expect(back.pool.models['p/b']!.missingSince).toBeUndefined();
  });
});

describe('promotion', () => {
  const discovered: DiscoveredModel = {
    id: 'groq/Llama-3.3-70B:Versatile',
    provider: 'groq',
    upstream: 'Llama-3.3-70B:Versatile',
    firstSeen: 'T',
    lastSeen: 'T',
    contextWindow: 8192,
    maxOutput: 32768,
    pricing: { input_per_mtok: 0.59, output_per_mtok: 0.79 },
    capabilities: ['chat', 'streaming', 'tools'],
    filledFrom: 'litellm-price-map',
  };

  it('names a model after its upstream id, its provider when the name is taken', () => {
    expect(modelName(discovered, () => false)).toBe('llama-3.3-70b-versatile');
    expect(modelName(discovered, (n) => n === 'llama-3.3-70b-versatile')).toBe(
      'groq-llama-3.3-70b-versatile',
    );
  });

  it('writes what the pool knows and drops a max_output larger than the window', () => {
    expect(catalogEntry('llama', discovered)).toEqual({
      provider: 'groq',
      upstream: 'Llama-3.3-70B:Versatile',
      capabilities: ['chat', 'streaming', 'tools'],
      context_window: 8192,
      pricing: { input_per_mtok: 0.59, output_per_mtok: 0.79 },
    });
  });

  it('edits policy files in place, keeping comments, and appends to a profile list', () => {
    const text =
      '# my providers\nproviders:\n  a: { kind: groq, credential: env:GROQ_API_KEY } # fast\nprofiles:\n  p:\n    models: [x]\n';
    const editor = new PolicyEditor({
      dir: '/policies',
      texts: new Map([['main.yaml', text]]),
      loaded: [{ name: 'main.yaml', text }],
    });
    expect(editor.set('providers', 'b', { kind: 'ollama' })).toBe('main.yaml');
    expect(editor.appendToList('profiles', 'p', 'models', 'y')).toBe('main.yaml');
    // No models: section anywhere yet: its own file.
    expect(editor.set('models', 'y', { provider: 'b', capabilities: ['chat'] })).toBe(
      'models.yaml',
    );
    const edited = editor.edits.get('main.yaml')!;
    expect(edited).toContain('# my providers');
    expect(edited).toContain('# fast');
    expect(edited).toMatch(/b:\n\s+kind: ollama/);
    expect(edited).toMatch(/models: \[ x, y \]|models:\s*\[x, y\]/);
  });

  it('an id such as __proto__ or constructor is no discovered model: 404 naming ids, not a crash', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mc-promote-'));
    try {
      await writeFile(path.join(dir, 'p.yaml'), 'providers: {}\n');
      const expansion = new SelfExpansion({
        policiesDir: dir,
        repo: () => Promise.reject(new Error('nothing is committed')),
        apply: () => Promise.reject(new Error('nothing is applied')),
        pool: new PoolStore(dir),
      });
      for (const id of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
        const refused = await expansion
          .promote([id], undefined, { author: 't', dryRun: true })
          .catch((error: unknown) => error);
        expect(refused, id).toBeInstanceOf(InputError);
        expect(refused, id).toMatchObject({ status: 404, field: 'ids' });
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('says what, why and who in the commit message', () => {
    expect(commitMessage('providers: add nova', 'need capacity', { name: 'agent-7' })).toBe(
      'providers: add nova\n\nReason: need capacity\n\nRequested-By: agent-7\nChanged-Through: modelcenter API',
    );
  });
});
