import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { buildFromTexts } from '../../src/compile/build.js';
import type { LiteLLMConfig } from '../../src/compile/litellm-config.js';
import { formatProblem } from '../../src/policy/problems.js';
import { startLiteLLM, type RunningLiteLLM } from '../../src/litellm/process.js';
import { startAnthropicFake } from '../fakes/anthropic.js';
import type { FakeUpstream } from '../fakes/core.js';
import { startOllamaFake } from '../fakes/ollama.js';
import { startOpenAIFake } from '../fakes/openai.js';
import { testKey } from './secrets.js';
import { scaled } from './timing.js';

export interface Fakes {
  ollama: FakeUpstream;
  groq: FakeUpstream;
  openai: FakeUpstream;
  anthropic: FakeUpstream;
}

export interface Keys {
  master: string;
  groq: string;
  openai: string;
  anthropic: string;
}

export function allFakes(fakes: Fakes): FakeUpstream[] {
  return [fakes.ollama, fakes.groq, fakes.openai, fakes.anthropic];
}

/** Fresh keys for one test run: made at test time, never written in the repo. */
export function newKeys(): Keys {
  return {
    master: testKey('sk-master-'),
    groq: testKey('gsk_'),
    openai: testKey(),
    anthropic: testKey('sk-ant-test-'),
  };
}

/** The environment LiteLLM needs for the scenario's credential references. */
export function providerEnv(keys: Keys): Record<string, string> {
  return {
    GROQ_API_KEY: keys.groq,
    OPENAI_API_KEY: keys.openai,
    ANTHROPIC_API_KEY: keys.anthropic,
  };
}

/** Starts one fake per provider flavour, each requiring its own key where the real one does. */
export async function startFakes(keys: Keys): Promise<Fakes> {
  const [ollama, groq, openai, anthropic] = await Promise.all([
    startOllamaFake({
      name: 'ollama-fake',
      contextWindows: { 'llama3.1:8b': 512, 'nomic-embed-text': 8192 },
    }),
    startOpenAIFake({
      name: 'groq-fake',
      apiKey: keys.groq,
      contextWindows: { 'llama-3.3-70b-versatile': 1024 },
    }),
    startOpenAIFake({
      name: 'openai-fake',
      apiKey: keys.openai,
      contextWindows: { 'gpt-4o-mini': 128_000, 'text-embedding-3-small': 8191 },
    }),
    startAnthropicFake({
      name: 'anthropic-fake',
      apiKey: keys.anthropic,
      contextWindows: { 'claude-sonnet-4-20250514': 200_000 },
    }),
  ]);
  return { ollama, groq, openai, anthropic };
}

/** The policies the integration tests serve: every provider flavour, profiles with fallbacks. */
export function scenarioPolicies(fakes: Fakes): string {
  return `
providers:
  local-ollama:
    kind: ollama
    base_url: ${fakes.ollama.url}
    timeout: 3s
  groq:
    kind: groq
    base_url: ${fakes.groq.url}/v1
    credential: env:GROQ_API_KEY
  openai:
    kind: openai
    base_url: ${fakes.openai.url}/v1
    credential: env:OPENAI_API_KEY
  anthropic:
    kind: anthropic
    base_url: ${fakes.anthropic.url}
    credential: env:ANTHROPIC_API_KEY

models:
  llama-small:
    provider: local-ollama
    upstream: llama3.1:8b
    capabilities: [chat, streaming]
    context_window: 512
    quality: 50
  groq-llama:
    provider: groq
    upstream: llama-3.3-70b-versatile
    capabilities: [chat, streaming, tools]
    context_window: 1024
    pricing: { input_per_mtok: 0.05, output_per_mtok: 0.08 }
    quality: 72
  gpt-mini:
    provider: openai
    upstream: gpt-4o-mini
    capabilities: [chat, streaming, tools]
    context_window: 128000
    pricing: { input_per_mtok: 0.15, output_per_mtok: 0.6 }
    quality: 70
  claude:
    provider: anthropic
    upstream: claude-sonnet-4-20250514
    capabilities: [chat, streaming, tools]
    context_window: 200000
    max_output: 8192
    pricing: { input_per_mtok: 3, output_per_mtok: 15 }
    quality: 92
  embed-small:
    provider: openai
    upstream: text-embedding-3-small
    capabilities: [embedding]
    pricing: { input_per_mtok: 0.02, output_per_mtok: 0 }

profiles:
  fast:
    requires: [chat, streaming]
    prefer: [local, cost]
    max_deployments: 2
    fallback: [deep]
  deep:
    requires: [chat, tools]
    min_context: 100000
    prefer: [quality]
    params: { temperature: 0.2 }
  embed:
    requires: [embedding]

routing:
  retries: 0
  allowed_fails: 100
  cooldown: 1s
`;
}

export interface Stack {
  dir: string;
  /** Where LiteLLM's spool callback writes request records (inside dir). */
  spoolDir: string;
  keys: Keys;
  fakes: Fakes;
  config: LiteLLMConfig;
  litellm: RunningLiteLLM;
  client: OpenAI;
  stop(): Promise<void>;
}

/** Compiles `policies` with the real compiler, writes config.yaml, and starts the real LiteLLM on it. */
export async function startStack(
  policies: (fakes: Fakes) => string = scenarioPolicies,
): Promise<Stack> {
  const keys: Keys = newKeys();
  const fakes = await startFakes(keys);
  const dir = await mkdtemp(path.join(tmpdir(), 'modelcenter-stack-'));
  try {
    const build = buildFromTexts([{ name: 'policies/scenario.yaml', text: policies(fakes) }]);
    if (!build.yaml || !build.config)
      throw new Error(build.findings.errors.map(formatProblem).join('\n'));
    const configPath = path.join(dir, 'config.yaml');
    await writeFile(configPath, build.yaml);
    const spoolDir = path.join(dir, 'spool');
    const litellm = await startLiteLLM({
      configPath,
      masterKey: keys.master,
      env: providerEnv(keys),
      spoolDir,
    });
    const client = new OpenAI({
      baseURL: `${litellm.url}/v1`,
      apiKey: keys.master,
      maxRetries: 0,
      timeout: scaled(60_000),
    });
    return {
      dir,
      spoolDir,
      keys,
      fakes,
      config: build.config,
      litellm,
      client,
      async stop() {
        await litellm.stop();
        await Promise.all(allFakes(fakes).map((f) => f.close()));
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await Promise.all(allFakes(fakes).map((f) => f.close()));
    throw error;
  }
}
