import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { litellmVenv } from '../../src/litellm/install.js';
import { kindInfo, PROVIDER_KIND_INFO, PROVIDER_KINDS } from '../../src/policy/provider-kinds.js';
import { LITELLM_OPENAI_COMPATIBLE } from '../../src/policy/provider-kinds.generated.js';
import {
  GENERATED_FILE,
  renderGeneratedKinds,
  type LiteLLMFacts,
} from '../../src/policy/provider-kinds-source.js';
import { scaled } from '../helpers/timing.js';

vi.setConfig({ testTimeout: scaled(120_000), hookTimeout: scaled(120_000) });

const ROOT = path.resolve(import.meta.dirname, '../..');
const SCRIPT = path.join(ROOT, 'scripts/litellm-providers.py');

/** scripts/litellm-providers.py with the pinned LiteLLM's own interpreter. */
function askLiteLLM(mode: 'facts' | 'check', input?: unknown): unknown {
  const out = execFileSync(path.join(litellmVenv(), 'bin', 'python'), [SCRIPT, mode], {
    encoding: 'utf8',
    input: input === undefined ? '' : JSON.stringify(input),
    stdio: ['pipe', 'pipe', 'ignore'],
    maxBuffer: 16 * 1024 * 1024,
  });
  return JSON.parse(out);
}

interface Check {
  kind: string;
  prefix: string;
  known: boolean;
  routesTo?: string;
  error?: string;
}

describe('the provider registry against the pinned LiteLLM', () => {
  let facts: LiteLLMFacts;
  let checks: Map<string, Check>;

  beforeAll(() => {
    facts = askLiteLLM('facts') as LiteLLMFacts;
    const answer = askLiteLLM(
      'check',
      PROVIDER_KINDS.map((kind) => ({
        kind,
        prefix: kindInfo(kind).prefix,
        // Kinds without a default address (vLLM, Azure, …) are checked at a placeholder one.
        base_url: kindInfo(kind).defaultBaseUrl ?? 'http://127.0.0.1:9/v1',
      })),
    ) as { checks: Check[] };
    checks = new Map(answer.checks.map((c) => [c.kind, c]));
  });

  it('knows at least 45 kinds, including every id users expect and the natives', () => {
    const canonical = new Set(Object.values(PROVIDER_KIND_INFO).map((i) => i.id));
    expect(canonical.size).toBeGreaterThanOrEqual(45);
    for (const id of [
      'groq',
      'deepseek',
      'openrouter',
      'xai',
      'mistral',
      'perplexity',
      'together',
      'fireworks',
      'cerebras',
      'sambanova',
      'hyperbolic',
      'novita',
      'featherless',
      'moonshot',
      'zhipu',
      'glm',
      'dashscope',
      'qwen',
      'minimax',
      'stepfun',
      '01.ai',
      'yi',
      'lmstudio',
      'llamacpp',
      'localai',
      'vllm',
      'ollama',
      'openai',
      'anthropic',
      'gemini',
      'cohere',
      'azure',
      'bedrock',
      'vertex',
    ]) {
      expect(PROVIDER_KINDS, id).toContain(id);
    }
  });

  it('uses only provider prefixes the pinned LiteLLM knows, and LiteLLM routes each to that prefix', () => {
    const wrong = PROVIDER_KINDS.map((kind) => checks.get(kind)!).filter(
      (c) => !c.known || c.routesTo !== c.prefix,
    );
    expect(wrong).toEqual([]);
  });

  it('carries every OpenAI-compatible provider of the installed LiteLLM, with its base URL and key variables as LiteLLM reads them', () => {
    expect(facts.providers.length).toBeGreaterThanOrEqual(40);
    for (const provider of facts.providers) {
      const info = PROVIDER_KIND_INFO[provider.id];
      expect(info, provider.id).toBeDefined();
      expect(info!.prefix, provider.id).toBe(provider.id);
      expect(info!.keyVariables, provider.id).toEqual(provider.keyVariables);
      // Local servers get their usual address where LiteLLM has none (LM Studio).
      if (provider.baseUrl !== null)
        expect(info!.defaultBaseUrl, provider.id).toBe(provider.baseUrl);
    }
    expect(LITELLM_OPENAI_COMPATIBLE.length).toBe(facts.providers.length);
  });

  it('the generated file is what the installed LiteLLM generates now (regenerate after a pin change)', async () => {
    const committed = await readFile(path.join(ROOT, GENERATED_FILE), 'utf8');
    expect(committed).toBe(renderGeneratedKinds(facts));
  });

  it('gives every kind what a provider entry needs: a way to reach it and to list its models', () => {
    for (const kind of PROVIDER_KINDS) {
      const info = kindInfo(kind);
      if (!info.needsBaseUrl && info.auth !== 'aws' && info.auth !== 'google-adc') {
        expect(info.defaultBaseUrl, kind).toMatch(/^https?:\/\//);
      }
      if (info.needsCredential) expect(info.keyVariables.length, kind).toBeGreaterThan(0);
      expect(['openai', 'ollama', 'anthropic', 'gemini', 'none']).toContain(info.modelsEndpoint);
    }
  });
});
