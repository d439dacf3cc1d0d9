import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ApplyReport } from '../../src/apply/controller.js';
import { createLogger } from '../../src/log/logger.js';
import { startProviders, type ProvidersSubsystem } from '../../src/providers/subsystem.js';
import { PoolStore } from '../../src/providers/pool.js';
import { startAnthropicFake } from '../fakes/anthropic.js';
import type { FakeUpstream } from '../fakes/core.js';
import { startGeminiFake } from '../fakes/gemini.js';
import { startOllamaFake } from '../fakes/ollama.js';
import { startOpenAIFake } from '../fakes/openai.js';
import { git, policyRepo } from '../helpers/repo.js';
import { testKey } from '../helpers/secrets.js';
import { scaled } from '../helpers/timing.js';

vi.setConfig({ testTimeout: scaled(60_000) });

/** 55 Gemini models: more than one page of the fake's 50. */
const GEMINI_MODELS: Record<string, number> = Object.fromEntries(
  Array.from({ length: 54 }, (_, i): [string, number] => [
    `gemini-test-${String(i).padStart(2, '0')}`,
    1_000_000,
  ]).concat([['text-embedding-004', 2048]]),
);

describe('model sync against fake OpenAI-compatible, Ollama, Anthropic and Gemini servers', () => {
  const keys = { openai: testKey(), anthropic: testKey('sk-ant-test-'), gemini: testKey('AIza') };
  const openaiModels: Record<string, number> = {
    'gpt-4o-mini': 128_000,
    'gpt-4o': 128_000,
    'gpt-4o-realtime-preview': 128_000,
    'text-embedding-3-small': 8191,
    'dall-e-3': 4000,
  };
  const ollamaModels: Record<string, number> = { 'llama3.1:8b': 131_072, 'qwen2.5:7b': 32_768 };
  const anthropicModels: Record<string, number> = {
    'claude-sonnet-4-20250514': 200_000,
    'claude-3-5-haiku-20241022': 200_000,
  };
  let fakes: FakeUpstream[];
  let repo: string;
  let providers: ProvidersSubsystem;
  let applies = 0;

  beforeAll(async () => {
    const [openai, ollama, anthropic, gemini] = await Promise.all([
      startOpenAIFake({ name: 'openai-fake', apiKey: keys.openai, contextWindows: openaiModels }),
      startOllamaFake({ name: 'ollama-fake', contextWindows: ollamaModels }),
      startAnthropicFake({
        name: 'anthropic-fake',
        apiKey: keys.anthropic,
        contextWindows: anthropicModels,
      }),
      startGeminiFake({ name: 'gemini-fake', apiKey: keys.gemini, contextWindows: GEMINI_MODELS }),
    ]);
    fakes = [openai, ollama, anthropic, gemini];
    repo = await policyRepo(`
providers:
  openai:
    kind: openai
    base_url: ${openai.url}/v1
    credential: env:OPENAI_API_KEY
    discovery: { include: ["gpt-*", "text-embedding-*"], exclude: ["*-realtime-*"] }
  local:
    kind: ollama
    base_url: ${ollama.url}
  anthropic:
    kind: anthropic
    base_url: ${anthropic.url}
    credential: env:ANTHROPIC_API_KEY
  gemini:
    kind: gemini
    base_url: ${gemini.url}
    credential: env:GEMINI_API_KEY
models:
  haiku:
    provider: anthropic
    upstream: claude-3-5-haiku-20241022
    capabilities: [chat]
    pricing: { input_per_mtok: 0.8, output_per_mtok: 4 }
profiles:
  chat:
    requires: [chat]
`);
    providers = await startProviders({
      settings: {
        policies: path.join(repo, 'policies'),
        stateDir: path.join(repo, '.modelcenter'),
      },
      env: {
        OPENAI_API_KEY: keys.openai,
        ANTHROPIC_API_KEY: keys.anthropic,
        GEMINI_API_KEY: keys.gemini,
      },
      log: createLogger({ level: 'silent' }),
      apply: () => {
        applies += 1;
        return Promise.resolve({ outcome: 'unchanged', problems: [] } as ApplyReport);
      },
    });
  });
  afterAll(async () => {
    await providers.stop();
    await Promise.all(fakes.map((f) => f.close()));
    await rm(repo, { recursive: true, force: true });
  });

  it('finds exactly their models, honours include/exclude, notices a model that disappeared, and changes nothing that is served', async () => {
    const head = git(repo, 'rev-parse', 'HEAD');
    const policies = await readFile(path.join(repo, 'policies', 'scenario.yaml'), 'utf8');
    const job = providers.jobs!['model-sync']!;
    await job({ logger: createLogger({ level: 'silent' }) } as never);
    const pool = await new PoolStore(path.join(repo, '.modelcenter')).read();
    const ids = (provider: string) =>
      Object.values(pool.models)
        .filter((m) => m.provider === provider)
        .map((m) => m.upstream)
        .sort();

    // include gpt-* and text-embedding-*, exclude *-realtime-*: dall-e-3 and the realtime model stay out.
    expect(ids('openai')).toEqual(['gpt-4o', 'gpt-4o-mini', 'text-embedding-3-small']);
    expect(pool.syncs.openai).toMatchObject({ ok: true, listed: 5, kept: 3 });
    expect(ids('local')).toEqual(['llama3.1:8b', 'qwen2.5:7b']);
    expect(ids('anthropic')).toEqual(['claude-3-5-haiku-20241022', 'claude-sonnet-4-20250514']);
    expect(ids('gemini')).toEqual(Object.keys(GEMINI_MODELS).sort()); // two pages
    // Ollama's own context length (/api/show); Gemini's input limit; LiteLLM's price map for OpenAI.
    expect(pool.models['local/llama3.1:8b']).toMatchObject({ contextWindow: 131_072 });
    expect(pool.models['gemini/text-embedding-004']!.capabilities).toEqual(['embedding']);
    expect(pool.models['openai/gpt-4o-mini']).toMatchObject({
      contextWindow: 128_000,
      pricing: { input_per_mtok: 0.15, output_per_mtok: 0.6 },
      filledFrom: 'provider+litellm-price-map',
    });
    expect(pool.models['openai/gpt-4o-mini']!.capabilities).toEqual(
      expect.arrayContaining(['chat', 'tools', 'vision']),
    );

    // The provider stops listing two models, one of them curated.
    delete openaiModels['gpt-4o'];
    delete anthropicModels['claude-3-5-haiku-20241022'];
    const reports = await providers.sync.sync(
      new Map([
        [
          'openai',
          {
            kind: 'openai',
            base_url: `${fakes[0]!.url}/v1`,
            credential: 'env:OPENAI_API_KEY',
            discovery: { include: ['gpt-*', 'text-embedding-*'], exclude: ['*-realtime-*'] },
          },
        ],
        [
          'anthropic',
          { kind: 'anthropic', base_url: fakes[2]!.url, credential: 'env:ANTHROPIC_API_KEY' },
        ],
      ]),
    );
    expect(reports.map((r) => [r.provider, r.disappeared])).toEqual([
      ['anthropic', ['anthropic/claude-3-5-haiku-20241022']],
      ['openai', ['openai/gpt-4o']],
    ]);
    const status = (await providers.status!()) as {
      models: { missingCurated: { model: string; provider: string }[] };
    };
    expect(status.models.missingCurated).toEqual([
      expect.objectContaining({ model: 'haiku', provider: 'anthropic' }),
    ]);
    const after = await new PoolStore(path.join(repo, '.modelcenter')).read();
    expect(after.models['openai/gpt-4o']!.missingSince).toBeDefined();
    expect(after.models['openai/gpt-4o']!.firstSeen).toBe(pool.models['openai/gpt-4o']!.firstSeen);

    // Sync never touches the policies, the repository or the apply path.
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(head);
    expect(git(repo, 'status', '--porcelain')).toBe('');
    expect(await readFile(path.join(repo, 'policies', 'scenario.yaml'), 'utf8')).toBe(policies);
    expect(applies).toBe(0);
  });

  it('a provider that refuses the key is reported, and its models stay in the pool', async () => {
    const reports = await providers.sync.sync(
      new Map([
        [
          'anthropic',
          { kind: 'anthropic', base_url: fakes[2]!.url, credential: 'env:GEMINI_API_KEY' },
        ],
      ]),
    );
    expect(reports[0]).toMatchObject({ provider: 'anthropic', ok: false });
    expect(reports[0]!.error).toMatch(/answered 401: the credential was refused/);
    expect(reports[0]!.error).not.toContain(keys.gemini);
    const pool = await new PoolStore(path.join(repo, '.modelcenter')).read();
    expect(pool.models['anthropic/claude-sonnet-4-20250514']).toBeDefined();
  });
});
