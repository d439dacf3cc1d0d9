import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/run.js';
import type { FakeUpstream } from '../fakes/core.js';
import { startOpenAIFake } from '../fakes/openai.js';
import { git, policyRepo } from '../helpers/repo.js';
import { testKey } from '../helpers/secrets.js';

async function cli(args: string[], env: Record<string, string>, cwd: string) {
  let stdout = '';
  let stderr = '';
  const code = await runCli(
    args,
    { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), cwd },
    env,
  );
  return { code, stdout, stderr };
}

describe('modelcenter providers discover and test', () => {
  let repo: string;
  let fake: FakeUpstream;
  const key = testKey('gsk_');

  beforeAll(async () => {
    repo = await policyRepo(
      'providers:\n  local:\n    kind: ollama\nmodels:\n  llama:\n    provider: local\n    capabilities: [chat]\n',
    );
    fake = await startOpenAIFake({
      name: 'box',
      apiKey: key,
      contextWindows: { 'qwen2.5-coder': 32_768, 'llama-3.1-8b': 8192 },
    });
  });
  afterAll(async () => {
    await fake.close();
    await rm(repo, { recursive: true, force: true });
  });

  it('proposes providers for the keys and URLs in the environment as a diff; --write commits them', async () => {
    const env = {
      GROQ_API_KEY: key,
      PROVIDER_GPU_BOX_URL: `${fake.url}/v1`,
      PROVIDER_GPU_BOX_KEY: key,
    };
    const head = git(repo, 'rev-parse', 'HEAD');
    const shown = await cli(['providers', 'discover'], env, repo);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain('# groq: from GROQ_API_KEY');
    expect(shown.stdout).toMatch(/\+ {2}gpu-box:/);
    expect(shown.stdout).toContain('credential: env:PROVIDER_GPU_BOX_KEY');
    expect(shown.stdout + shown.stderr).not.toContain(key);
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(head);

    const written = await cli(['providers', 'discover', '--write'], env, repo);
    expect(written.code).toBe(0);
    expect(git(repo, 'log', '-1', '--format=%an%n%s')).toBe(
      'cli\nproviders: add gpu-box, groq (found in the environment)',
    );
    const file = await readFile(path.join(repo, 'policies', 'scenario.yaml'), 'utf8');
    expect(file).toContain('kind: groq');
    expect(file).not.toContain(key);
    // Nothing left to propose.
    const again = await cli(['providers', 'discover'], env, repo);
    expect(again.stderr).toContain('no new provider');
  });

  it('never prints a key a URL in the environment carries, and writes nothing (the proposal printed it as found)', async () => {
    const secret = testKey('pw');
    const head = git(repo, 'rev-parse', 'HEAD');
    for (const format of ['text', 'json']) {
      const shown = await cli(
        ['providers', 'discover', '--format', format, '--write'],
        {
          PROVIDER_EDGE_URL: `https://edge.example/v1?api_key=${secret}`,
          PROVIDER_VAULT_URL: `https://admin:${secret}@vault.example/v1`,
        },
        repo,
      );
      expect(shown.code, format).toBe(1);
      expect(shown.stdout + shown.stderr, format).not.toContain(secret);
      expect(shown.stdout, format).toContain('vault.example');
    }
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(head);
  });

  it('tests a definition that is not saved: models and latency, or the refusal', async () => {
    const ok = await cli(
      [
        'providers',
        'test',
        '--kind',
        'openai_compatible',
        '--base-url',
        `${fake.url}/v1`,
        '--credential',
        'env:BOX_KEY',
      ],
      { BOX_KEY: key },
      repo,
    );
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/answered in \d+ ms with 2 models \(qwen2.5-coder, llama-3.1-8b\)/);
    const refused = await cli(
      [
        'providers',
        'test',
        '--kind',
        'openai_compatible',
        '--base-url',
        `${fake.url}/v1`,
        '--credential',
        'env:BOX_KEY',
        '--format',
        'json',
      ],
      { BOX_KEY: 'wrong' },
      repo,
    );
    expect(refused.code).toBe(2);
    expect(JSON.parse(refused.stdout)).toMatchObject({
      ok: false,
      reachable: true,
      credentialAccepted: false,
      status: 401,
    });
    const unknown = await cli(['providers', 'test', '--kind', 'grok'], {}, repo);
    expect(unknown.code).toBe(1);
  });
});
