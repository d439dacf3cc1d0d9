import { rm } from 'node:fs/promises';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import type { Controller } from '../../src/apply/controller.js';
import { LiteLLMAdminClient } from '../../src/litellm/admin-client.js';
import { AdminApiStrategy } from '../../src/reload/admin-api.js';
import { startOpenAIFake } from '../fakes/openai.js';
import type { FakeUpstream } from '../fakes/core.js';
import { controllerFor } from '../helpers/controller.js';
import { startDbStack, type DbStack } from '../helpers/litellm-db.js';
import { commitPolicies, git, policyRepo } from '../helpers/repo.js';
import { testKey } from '../helpers/secrets.js';
import { scaled } from '../helpers/timing.js';

vi.setConfig({ testTimeout: scaled(120_000) });

/**
 * The admin-api strategy on two real LiteLLM instances in database mode sharing one PostgreSQL
 * database: the first takes the writes, the second learns them from its database poll. Faults a
 * real LiteLLM cannot be made to produce (a write refused halfway, an instance that never polls)
 * stay on the emulator in test/integration/admin-api.test.ts.
 */

/** Both instances define this model in their own config.yaml: owned by that YAML, never by the API. */
const HOUSE_EMBED = `  - model_name: house-embed
    litellm_params:
      model: ollama/nomic-embed-text
      api_base: http://127.0.0.1:1
    model_info:
      id: house-embed`;

const policiesFor = (upstream: string) => `
providers:
  openai:
    kind: openai
    credential: env:OPENAI_API_KEY
    base_url: ${upstream}/v1
    timeout: 30s

models:
  gpt-mini:
    provider: openai
    upstream: gpt-4o-mini
    capabilities: [chat, streaming]
    context_window: 128000
    pricing: { input_per_mtok: 0.15, output_per_mtok: 0.6 }

profiles:
  cheap:
    requires: [chat]
    models: [gpt-mini]
`;

const GPT_BIG = `
  gpt-big:
    provider: openai
    upstream: gpt-4o
    capabilities: [chat, tools]
    context_window: 128000
    pricing: { input_per_mtok: 2.5, output_per_mtok: 10 }
`;

const without = (text: string, name: string) =>
  text.replace(new RegExp(`\\n {2}${name}:\\n(?: {4}.*\\n)+`), '\n');

describe('admin-api strategy on two real database-mode LiteLLM instances sharing one database', () => {
  const masterKey = testKey('sk-master-');
  const openaiKey = testKey();
  let upstream: FakeUpstream;
  let stack: DbStack;
  let repo: string;
  let strategy: AdminApiStrategy;
  let controller: Controller;
  let policies: string;

  const commit = (text: string, message: string) => {
    policies = text;
    return commitPolicies(repo, text, message);
  };
  /** The ids each instance serves from its database. */
  const dbIds = async () =>
    Promise.all(
      stack.urls.map(async (url) =>
        (await new LiteLLMAdminClient(url, masterKey, 60_000).inventory())
          .filter((d) => d.dbModel)
          .map((d) => d.id)
          .sort(),
      ),
    );
  /** A chat request through `url` to model group `model`, as a client would send it. */
  const chat = (url: string, model: string) =>
    new OpenAI({ baseURL: `${url}/v1`, apiKey: masterKey, maxRetries: 0 }).chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'hello' }],
    });

  beforeAll(async () => {
    upstream = await startOpenAIFake({ name: 'openai', apiKey: openaiKey });
    stack = await startDbStack({
      context: inject('litellmDb'),
      masterKey,
      count: 2,
      extraModels: HOUSE_EMBED,
      env: { OPENAI_API_KEY: openaiKey },
    });
    policies = policiesFor(upstream.url);
    repo = await policyRepo(policies);
    strategy = new AdminApiStrategy({
      instances: stack.urls,
      masterKey,
      convergeTimeoutMs: scaled(30_000),
      pollIntervalMs: 200,
    });
    controller = await controllerFor(repo, strategy);
  });
  afterAll(async () => {
    await stack?.stop();
    await upstream?.close();
    if (repo) await rm(repo, { recursive: true, force: true });
  });

  it('first apply creates every deployment; both instances serve them beside their YAML model and answer through them', async () => {
    const report = await controller.apply();
    expect(report.problems).toEqual([]);
    expect(report.outcome).toBe('applied');
    expect(report.verify?.ok).toBe(true);
    expect(report.lastKnownGood).toBe(git(repo, 'rev-parse', 'HEAD'));
    expect(strategy.lastPlan?.create.map((d) => d.model_info.id).sort()).toEqual([
      'cheap/gpt-mini',
      'gpt-mini',
    ]);
    expect(await dbIds()).toEqual([
      ['cheap/gpt-mini', 'gpt-mini'],
      ['cheap/gpt-mini', 'gpt-mini'],
    ]);
    for (const url of stack.urls) {
      const answer = await chat(url, 'cheap');
      expect(answer.choices[0]?.message.content).toMatch(/openai/);
    }
    // The key went as an os.environ reference: each instance resolved it, the upstream saw it.
    expect(upstream.generations().every((r) => r.outcome === 200)).toBe(true);
    expect(upstream.generations()).toHaveLength(2);
  });

  it('a policy commit adding a model: both instances converge on it and answer with it; last-known-good moves', async () => {
    const before = await controller.state.lastKnownGood();
    await commit(policies.replace('\nprofiles:', `${GPT_BIG}\nprofiles:`), 'policies: add gpt-big');
    const report = await controller.apply();
    expect(report.problems).toEqual([]);
    expect(report.outcome).toBe('applied');
    expect(report.lastKnownGood).not.toBe(before);
    expect(strategy.lastPlan?.create.map((d) => d.model_info.id)).toEqual(['gpt-big']);
    for (const ids of await dbIds()) expect(ids).toContain('gpt-big');
    for (const url of stack.urls) await expect(chat(url, 'gpt-big')).resolves.toBeTruthy();
  });

  it('changing a price: an update and a replace (a slash in the id); every instance serves the new price', async () => {
    await commit(
      policies.replace('input_per_mtok: 0.15', 'input_per_mtok: 0.1'),
      'policies: gpt-mini is cheaper',
    );
    const report = await controller.apply();
    expect(report.problems).toEqual([]);
    expect(report.outcome).toBe('applied');
    expect(strategy.lastPlan?.update.map((d) => d.model_info.id)).toEqual(['gpt-mini']);
    expect(strategy.lastPlan?.replace.map((d) => d.model_info.id)).toEqual(['cheap/gpt-mini']);
    for (const url of stack.urls) {
      const served = await modelInfo(url, masterKey);
      for (const id of ['gpt-mini', 'cheap/gpt-mini'])
        expect(
          served.find((d) => d.model_info.id === id)?.litellm_params.input_cost_per_token,
        ).toBe(1.0e-7);
    }
  });

  it('removing a model: no instance serves it any more, and a request for it is refused', async () => {
    await commit(without(policies, 'gpt-big'), 'policies: drop gpt-big');
    const report = await controller.apply();
    expect(report.outcome).toBe('applied');
    expect(strategy.lastPlan?.delete).toEqual(['gpt-big']);
    for (const ids of await dbIds()) expect(ids).not.toContain('gpt-big');
    for (const url of stack.urls) await expect(chat(url, 'gpt-big')).rejects.toThrow();
  });

  it('a policy model with the id of a YAML model is refused, nothing is written, last-known-good stays', async () => {
    const lkg = await controller.state.lastKnownGood();
    const ids = await dbIds();
    await commit(
      policies.replace(
        'models:\n',
        'models:\n  house-embed:\n    provider: openai\n    upstream: text-embedding-3-small\n    capabilities: [embedding]\n',
      ),
      'policies: house-embed',
    );
    const report = await controller.apply();
    expect(report.outcome).toBe('rolled-back');
    expect(report.problems.join('\n')).toMatch(
      new RegExp(
        `deployment id "house-embed" is defined in the config.yaml of ${stack.urls[0]}, ${stack.urls[1]}; .*give the policy model another id`,
      ),
    );
    expect(await controller.state.lastKnownGood()).toBe(lkg);
    expect(await dbIds()).toEqual(ids);
    await commit(without(policies, 'house-embed'), 'policies: undo');
    expect((await controller.apply()).outcome).toBe('applied');
  });

  it('a third instance started later on the same database serves the committed set at once', async () => {
    const third = await stack.addInstance();
    const ids = (await new LiteLLMAdminClient(third.url, masterKey, 60_000).inventory())
      .filter((d) => d.dbModel)
      .map((d) => d.id)
      .sort();
    expect(ids).toEqual(['cheap/gpt-mini', 'gpt-mini']);
    await expect(chat(third.url, 'cheap')).resolves.toBeTruthy();
  });
});

/** `/v1/model/info` of an instance, as a user would read it. */
async function modelInfo(
  url: string,
  masterKey: string,
): Promise<{ model_info: { id: string }; litellm_params: Record<string, unknown> }[]> {
  const response = await fetch(`${url}/v1/model/info`, {
    headers: { authorization: `Bearer ${masterKey}` },
  });
  return ((await response.json()) as { data: never[] }).data;
}
