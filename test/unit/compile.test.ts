import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { buildFromDir, buildFromTexts } from '../../src/compile/build.js';
import { PROVIDER_KINDS } from '../../src/policy/schema.js';
import { kindInfo } from '../../src/policy/provider-kinds.js';
import { render } from '../../src/compile/render.js';
import type { LiteLLMConfig } from '../../src/compile/litellm-config.js';
import { SPOOL_CALLBACK, SPOOL_CONTENT_CALLBACK } from '../../src/compile/compile.js';
import { EXAMPLE_POLICIES } from '../helpers/policies.js';

function compileText(text: string): LiteLLMConfig {
  const build = buildFromTexts([{ name: 'p.yaml', text }]);
  if (!build.config) throw new Error(JSON.stringify(build.findings.errors));
  return build.config;
}

const catalog = `
providers:
  ollama: { kind: ollama }
  groq: { kind: groq, credential: env:GROQ_API_KEY }
  openai: { kind: openai, credential: secret:openai-prod }
models:
  llama: { provider: ollama, upstream: "llama3.1:8b", capabilities: [chat, streaming], context_window: 8192, quality: 50 }
  groq-70b: { provider: groq, upstream: llama-3.3-70b, capabilities: [chat, streaming, tools], context_window: 131072, pricing: { input_per_mtok: 0.59, output_per_mtok: 0.79 }, quality: 72 }
  gpt-4o: { provider: openai, capabilities: [chat, streaming, tools, vision], context_window: 128000, pricing: { input_per_mtok: 2.5, output_per_mtok: 10 }, quality: 85 }
profiles:
  fast: { requires: [chat, streaming], prefer: [local, cost], fallback: [deep] }
  deep: { requires: [chat, tools], min_context: 100000, prefer: [quality], params: { temperature: 0.2, max_tokens: 2000 } }
cache: { type: redis, host: redis.internal, port: 6379, password: env:REDIS_PASSWORD, ttl: 1h }
`;

describe('compile', () => {
  it('renders byte-identical YAML for the same policies, whatever the file order', async () => {
    const first = (await buildFromDir(EXAMPLE_POLICIES)).yaml;
    const second = (await buildFromDir(EXAMPLE_POLICIES)).yaml;
    expect(first).toBeDefined();
    expect(second).toBe(first);
    const texts = [
      { name: 'a.yaml', text: 'providers:\n  ollama: { kind: ollama }\n' },
      { name: 'b.yaml', text: 'models:\n  llama: { provider: ollama, capabilities: [chat] }\n' },
    ];
    expect(buildFromTexts(texts).yaml).toBe(buildFromTexts([...texts].reverse()).yaml);
  });

  it('orders a profile group by preference and gives every deployment a stable explicit id', () => {
    const config = compileText(catalog);
    const fast = config.model_list.filter((d) => d.model_name === 'fast');
    expect(fast.map((d) => [d.model_info.id, d.litellm_params.order])).toEqual([
      ['fast/llama', 1],
      ['fast/groq-70b', 2],
      ['fast/gpt-4o', 3],
    ]);
    const deep = config.model_list.filter((d) => d.model_name === 'deep');
    expect(deep.map((d) => d.model_info.id)).toEqual(['deep/gpt-4o', 'deep/groq-70b']);
    expect(config.model_list.map((d) => d.model_info.id)).toEqual(
      expect.arrayContaining(['llama', 'groq-70b', 'gpt-4o']),
    );
  });

  it('compiles fallbacks and derives context-window fallbacks towards larger windows', () => {
    const config = compileText(catalog);
    expect(config.router_settings.fallbacks).toEqual([{ fast: ['deep'] }]);
    expect(config.router_settings.context_window_fallbacks).toBeUndefined(); // fast already holds a 131k model
    const small = compileText(
      catalog.replace(
        'fast: { requires: [chat, streaming],',
        'fast: { requires: [chat, streaming], only: local,',
      ),
    );
    expect(small.router_settings.context_window_fallbacks).toEqual([{ fast: ['deep'] }]);
    expect(small.router_settings.enable_pre_call_checks).toBe(true);
  });

  it('renders credentials only as os.environ references', () => {
    const config = compileText(catalog);
    const keys = config.model_list.map((d) => d.litellm_params.api_key);
    expect(new Set(keys)).toEqual(
      new Set(['os.environ/GROQ_API_KEY', 'os.environ/MODELCENTER_SECRET_OPENAI_PROD', undefined]),
    );
    expect(config.general_settings.master_key).toBe('os.environ/LITELLM_MASTER_KEY');
    expect(config.litellm_settings.cache_params).toEqual({
      type: 'redis',
      host: 'redis.internal',
      port: 6379,
      password: 'os.environ/REDIS_PASSWORD',
      ttl: 3600,
    });
  });

  it('puts prices per token in litellm_params and windows in model_info, where LiteLLM 1.10x reads them', () => {
    const groq = compileText(catalog).model_list.find((d) => d.model_info.id === 'groq-70b')!;
    expect(groq.litellm_params).toMatchObject({
      model: 'groq/llama-3.3-70b',
      input_cost_per_token: 5.9e-7,
      output_cost_per_token: 7.9e-7,
    });
    expect(groq.model_info).toMatchObject({
      max_input_tokens: 131072,
      mode: 'chat',
      supports_function_calling: true,
    });
  });

  it('compiles profile params into every deployment of the group', () => {
    const deep = compileText(catalog).model_list.filter((d) => d.model_name === 'deep');
    for (const d of deep)
      expect(d.litellm_params).toMatchObject({ temperature: 0.2, max_tokens: 2000 });
    const direct = compileText(catalog).model_list.find((d) => d.model_info.id === 'gpt-4o')!;
    expect(direct.litellm_params.temperature).toBeUndefined();
  });

  it('maps every provider kind to a LiteLLM prefix and base URL', () => {
    for (const kind of PROVIDER_KINDS) {
      const info = kindInfo(kind);
      const provider = [
        `kind: ${kind}`,
        'credential: env:KEY',
        info.needsBaseUrl ? 'base_url: http://box.internal:8000/v1' : '',
        info.id === 'azure' ? 'api_version: "2024-10-21"' : '',
      ]
        .filter(Boolean)
        .join(', ');
      const config = compileText(
        `providers:\n  p: { ${provider} }\nmodels:\n  m: { provider: p, upstream: up-1, capabilities: [chat], pricing: { input_per_mtok: 1, output_per_mtok: 1 } }\n`,
      );
      const params = config.model_list[0]!.litellm_params;
      expect(params.model, kind).toBe(`${info.prefix}/up-1`);
      expect(params.api_base, kind).toBe(
        info.needsBaseUrl ? 'http://box.internal:8000/v1' : info.defaultBaseUrl,
      );
    }
  });

  it('never renders an openai/ deployment without an api_key, whatever the kind (LiteLLM #50218 sent OPENAI_ADMIN_KEY instead)', () => {
    let openaiDeployments = 0;
    let expected = 0;
    for (const kind of PROVIDER_KINDS) {
      const info = kindInfo(kind);
      const credentials = info.needsCredential ? ['env:KEY'] : ['env:KEY', undefined];
      // Three deployments per provider (m, e and the profile's m), all openai/ for an openai/ prefix.
      if (info.prefix === 'openai') expected += 3 * credentials.length;
      for (const credential of credentials) {
        const provider = [
          `kind: ${kind}`,
          credential ? `credential: ${credential}` : '',
          info.needsBaseUrl ? 'base_url: http://box.internal:8000/v1' : '',
          info.id === 'azure' ? 'api_version: "2024-10-21"' : '',
        ]
          .filter(Boolean)
          .join(', ');
        const config = compileText(
          `providers:\n  p: { ${provider} }\nmodels:\n  m: { provider: p, capabilities: [chat], pricing: { input_per_mtok: 1, output_per_mtok: 1 } }\n  e: { provider: p, capabilities: [embedding], pricing: { input_per_mtok: 1, output_per_mtok: 1 } }\nprofiles:\n  any: { requires: [chat] }\n`,
        );
        for (const { litellm_params: params } of config.model_list) {
          if (!params.model.startsWith('openai/')) continue;
          openaiDeployments += 1;
          expect(params.api_key, `${kind} ${credential ?? 'without credential'}`).toMatch(/^\S+$/);
        }
      }
    }
    // openai, llamacpp, localai, stepfun, yi, 01.ai and openai_compatible, with and without a
    // credential where it is optional.
    expect(openaiDeployments).toBe(expected);
    expect(openaiDeployments).toBeGreaterThanOrEqual(15);
  });

  it('renders env references inside provider params (a header value) as os.environ references', () => {
    const config = compileText(
      'providers:\n  p: { kind: openai, credential: env:KEY, params: { extra_headers: { x-gateway-key: env:GATEWAY_KEY, x-team: research }, tags: [env:TAG, plain] } }\nmodels:\n  m: { provider: p, capabilities: [chat], pricing: { input_per_mtok: 1, output_per_mtok: 1 } }\n',
    );
    expect(config.model_list[0]!.litellm_params).toMatchObject({
      extra_headers: { 'x-gateway-key': 'os.environ/GATEWAY_KEY', 'x-team': 'research' },
      tags: ['os.environ/TAG', 'plain'],
    });
  });

  it('writes floats and strings so that PyYAML (LiteLLM) reads them back as the same values', () => {
    const yaml = render({
      model_list: [],
      router_settings: { enable_pre_call_checks: true },
      litellm_settings: { drop_params: true, cache_params: { a: 1e-7, b: 'yes', c: 5.9e-7 } },
      general_settings: { master_key: 'os.environ/K' },
    });
    expect(yaml).toContain('a: 1.0e-7');
    expect(yaml).toContain('b: "yes"');
    expect(parse(yaml, { version: '1.1' })).toMatchObject({
      litellm_settings: { cache_params: { a: 1e-7, b: 'yes', c: 5.9e-7 } },
    });
  });

  it('always wires the spool callback first and keeps callbacks named in the litellm passthrough', () => {
    const plain = compileText(catalog);
    expect(plain.litellm_settings.callbacks).toEqual([SPOOL_CALLBACK]);
    const withUser = compileText(
      `${catalog}litellm:\n  litellm_settings:\n    callbacks: [otel, ${SPOOL_CALLBACK}]\n`,
    );
    expect(withUser.litellm_settings.callbacks).toEqual([SPOOL_CALLBACK, 'otel']);
    const single = compileText(`${catalog}litellm:\n  litellm_settings:\n    callbacks: otel\n`);
    expect(single.litellm_settings.callbacks).toEqual([SPOOL_CALLBACK, 'otel']);
  });

  it('wires the content-keeping spool instance instead only when the policies set spend.keep_content', () => {
    expect(compileText(`${catalog}spend: {}\n`).litellm_settings.callbacks).toEqual([
      SPOOL_CALLBACK,
    ]);
    expect(
      compileText(`${catalog}spend: { keep_content: false }\n`).litellm_settings.callbacks,
    ).toEqual([SPOOL_CALLBACK]);
    const on = buildFromTexts([
      { name: 'p.yaml', text: catalog },
      { name: 'spend.yaml', text: 'spend:\n  keep_content: true\n' },
    ]);
    expect(on.config?.litellm_settings.callbacks).toEqual([SPOOL_CONTENT_CALLBACK]);
    expect(on.yaml).toContain(`callbacks:\n    - ${SPOOL_CONTENT_CALLBACK}\n`);
    expect(on.yaml).not.toContain(SPOOL_CALLBACK);
    // Byte-identical for the same input.
    expect(
      buildFromTexts([
        { name: 'p.yaml', text: catalog },
        { name: 'spend.yaml', text: 'spend:\n  keep_content: true\n' },
      ]).yaml,
    ).toBe(on.yaml);
    // The policies decide, not a callback named in the passthrough: exactly one spool instance.
    const named = (keep: boolean) =>
      compileText(
        `${catalog}spend: { keep_content: ${keep} }\nlitellm:\n  litellm_settings:\n    callbacks: [${SPOOL_CONTENT_CALLBACK}, otel, ${SPOOL_CALLBACK}]\n`,
      ).litellm_settings.callbacks;
    expect(named(false)).toEqual([SPOOL_CALLBACK, 'otel']);
    expect(named(true)).toEqual([SPOOL_CONTENT_CALLBACK, 'otel']);
  });

  it('starts the rendered file with a do-not-edit header and no timestamp', async () => {
    const yaml = (await buildFromDir(EXAMPLE_POLICIES)).yaml!;
    expect(yaml.split('\n')[0]).toMatch(/^# Generated by Model Center/);
    expect(yaml).not.toMatch(/20\d\d-\d\d-\d\d/);
  });
});
