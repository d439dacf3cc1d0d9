import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildFromTexts } from '../../src/compile/build.js';
import { startLiteLLM, type RunningLiteLLM } from '../../src/litellm/process.js';
import { silentLogger } from '../../src/log/logger.js';
import { formatProblem } from '../../src/policy/problems.js';
import { providerEnv } from '../../src/reload/make-strategy.js';
import type { FakeUpstream } from '../fakes/core.js';
import { startOpenAIFake } from '../fakes/openai.js';
import { testKey } from '../helpers/secrets.js';
import { scaled } from '../helpers/timing.js';

vi.setConfig({ testTimeout: scaled(120_000) });

/**
 * LiteLLM resolves `api_key: os.environ/NAME` to nothing when NAME is unset, and an `openai/`
 * deployment without a key falls back to OPENAI_API_KEY (and, before 1.108.2, OPENAI_ADMIN_KEY:
 * litellm-facts §10.1, #50218). So a self-hosted server whose key variable is missing — a
 * `secret:<provider>` the store has not exported, a variable forgotten in the unit file — would
 * receive the OpenAI key of another provider. The real pinned LiteLLM, the environment as the
 * controller builds it.
 */
describe('a provider whose key variable is not set', () => {
  const openaiKey = testKey();
  const masterKey = testKey('sk-master-');
  let openai: FakeUpstream;
  let gpuBox: FakeUpstream;
  let dir: string;
  let litellm: RunningLiteLLM | undefined;

  beforeAll(async () => {
    [openai, gpuBox] = await Promise.all([
      startOpenAIFake({ name: 'openai-fake', apiKey: openaiKey }),
      // Accepts any key: it records what it was sent.
      startOpenAIFake({ name: 'gpu-box-fake' }),
    ]);
    dir = await mkdtemp(path.join(tmpdir(), 'mc-unset-key-'));
  });
  afterAll(async () => {
    await litellm?.stop();
    await Promise.all([openai?.close(), gpuBox?.close()]);
    await rm(dir, { recursive: true, force: true });
  });

  it("never receives another provider's key: LiteLLM gets a placeholder, the request reaches the server without a real key", async () => {
    const build = buildFromTexts([
      {
        name: 'policies/p.yaml',
        text: `providers:
  openai:
    kind: openai
    credential: env:OPENAI_API_KEY
    base_url: ${openai.url}/v1
  gpu-box:
    kind: openai_compatible
    base_url: ${gpuBox.url}/v1
    credential: secret:gpu-box
    local: true
models:
  gpt-mini: { provider: openai, upstream: gpt-4o-mini, capabilities: [chat], pricing: { input_per_mtok: 1, output_per_mtok: 1 } }
  qwen: { provider: gpu-box, upstream: qwen-7b, capabilities: [chat] }
`,
      },
    ]);
    if (!build.yaml) throw new Error(build.findings.errors.map(formatProblem).join('\n'));
    const configPath = path.join(dir, 'config.yaml');
    await writeFile(configPath, build.yaml);
    // The secret store exported nothing for secret:gpu-box (MODELCENTER_SECRET_GPU_BOX).
    const env = providerEnv(configPath, { OPENAI_API_KEY: openaiKey }, silentLogger())();
    expect(env.OPENAI_API_KEY).toBe(openaiKey);
    expect(env.MODELCENTER_SECRET_GPU_BOX).toMatch(/^\S+$/);
    litellm = await startLiteLLM({ configPath, masterKey, env });
    const client = new OpenAI({
      baseURL: `${litellm.url}/v1`,
      apiKey: masterKey,
      maxRetries: 0,
      timeout: scaled(60_000),
    });

    await client.chat.completions.create({
      model: 'qwen',
      messages: [{ role: 'user', content: 'hello' }],
    });
    const sent = gpuBox.generations().map((r) => r.key);
    expect(sent).toHaveLength(1);
    expect(sent[0]).not.toBe(openaiKey);
    expect(sent[0]).toBe(env.MODELCENTER_SECRET_GPU_BOX);
    // The provider whose key is set still gets its own.
    await client.chat.completions.create({
      model: 'gpt-mini',
      messages: [{ role: 'user', content: 'hello' }],
    });
    expect(openai.generations().map((r) => r.key)).toEqual([openaiKey]);
  });
});
