import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Controller } from '../../src/apply/controller.js';
import { LiteLLMAdminClient } from '../../src/litellm/admin-client.js';
import { LiteLLMApiError } from '../../src/litellm/errors.js';
import { AdminApiStrategy } from '../../src/reload/admin-api.js';
import { ReloadError } from '../../src/reload/strategy.js';
import {
  startDbEmulator,
  type DbEmulator,
  type EmulatedDeployment,
  type RecordedAdminRequest,
} from '../emulator/litellm-db.js';
import { controllerFor } from '../helpers/controller.js';
import { fetchLiteLLMOpenApi } from '../helpers/litellm-openapi.js';
import { checkRequests, type OpenApiDocument } from '../helpers/openapi-contract.js';
import { commitPolicies, git, policyRepo } from '../helpers/repo.js';
import { testKey } from '../helpers/secrets.js';

/** A model an instance defines in its own config.yaml: owned by that YAML, never by the API. */
const yamlModel = (id: string): EmulatedDeployment => ({
  model_name: id,
  litellm_params: { model: 'ollama/nomic-embed-text', api_base: 'http://127.0.0.1:1' },
  model_info: { id },
});

const BASE = `
providers:
  openai:
    kind: openai
    credential: env:OPENAI_API_KEY
    timeout: 30s
  groq:
    kind: groq
    credential: env:GROQ_API_KEY

models:
  gpt-mini:
    provider: openai
    upstream: gpt-4o-mini
    capabilities: [chat, streaming]
    context_window: 128000
    pricing: { input_per_mtok: 0.15, output_per_mtok: 0.6 }
  groq-llama:
    provider: groq
    upstream: llama-3.3-70b-versatile
    capabilities: [chat, tools]
    context_window: 131072
    pricing: { input_per_mtok: 0.59, output_per_mtok: 0.79 }

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

/** The policies without catalog model `name`. */
const without = (text: string, name: string) =>
  text.replace(new RegExp(`\\n {2}${name}:\\n(?: {4}.*\\n)+`), '\n');

/** Every request any emulator in this file received, for the OpenAPI contract check at the end. */
const sent: RecordedAdminRequest[] = [];

/** The real LiteLLM's document, fetched once; started early so its start-up overlaps the tests. */
let openapi: Promise<OpenApiDocument> | undefined;
const realOpenApi = (): Promise<OpenApiDocument> =>
  (openapi ??= fetchLiteLLMOpenApi(testKey('sk-master-')));

/**
 * The strategy on the database-mode emulator: what it writes, request by request, and the faults a
 * real LiteLLM cannot be made to produce (a write refused halfway, an instance that never polls).
 * Adding and removing models, convergence of two instances and the YAML-owned refusal run on real
 * database-mode LiteLLM in test/db/admin-api.test.ts (npm run test:db).
 */
describe('admin-api strategy: a policy commit becomes the database-owned model set of every instance', () => {
  const masterKey = testKey('sk-master-');
  const openaiKey = testKey();
  const env = { OPENAI_API_KEY: openaiKey, GROQ_API_KEY: testKey('gsk_') };
  let emulator: DbEmulator;
  let repo: string;
  let strategy: AdminApiStrategy;
  let controller: Controller;
  let policies = BASE;

  /** Requests received since `mark`, without the readiness and model-info reads. */
  const writesSince = (mark: number) =>
    emulator.requests.slice(mark).filter((r) => r.method !== 'GET');
  const commit = async (text: string, message: string) => {
    policies = text;
    return commitPolicies(repo, text, message);
  };

  beforeAll(async () => {
    // Overlaps LiteLLM's start-up with these tests; the contract check at the end awaits it.
    realOpenApi().catch(() => undefined);
    emulator = await startDbEmulator({
      masterKey,
      instances: [
        { yaml: [yamlModel('house-embed')], pollMs: 200, env },
        { yaml: [yamlModel('house-embed'), yamlModel('edge-only')], pollMs: 200, env },
      ],
    });
    repo = await policyRepo(BASE);
    strategy = new AdminApiStrategy({
      instances: emulator.urls,
      masterKey,
      convergeTimeoutMs: 2000,
      pollIntervalMs: 50,
    });
    controller = await controllerFor(repo, strategy);
  });
  afterAll(async () => {
    sent.push(...(emulator?.requests ?? []));
    await emulator?.close();
    if (repo) await rm(repo, { recursive: true, force: true });
  });

  it('first apply creates every deployment with /model/new; both instances serve them beside their YAML models', async () => {
    const report = await controller.apply();
    expect(report.problems).toEqual([]);
    expect(report.outcome).toBe('applied');
    expect(report.lastKnownGood).toBe(git(repo, 'rev-parse', 'HEAD'));
    expect(report.verify?.ok).toBe(true);
    expect(
      writesSince(0)
        .map((r) => `${r.method} ${r.path}`)
        .sort(),
    ).toEqual(['POST /model/new', 'POST /model/new', 'POST /model/new']);
    expect(emulator.instances[0]!.servedIds()).toEqual([
      'cheap/gpt-mini',
      'gpt-mini',
      'groq-llama',
      'house-embed',
    ]);
    expect(emulator.instances[1]!.servedIds()).toEqual([
      'cheap/gpt-mini',
      'edge-only',
      'gpt-mini',
      'groq-llama',
      'house-embed',
    ]);
  });

  it('credentials travel as os.environ references, never as values', () => {
    const created = emulator.requests.find(
      (r) => r.path === '/model/new' && JSON.stringify(r.body).includes('gpt-mini'),
    );
    expect(created?.body).toMatchObject({
      litellm_params: { api_key: 'os.environ/OPENAI_API_KEY' },
    });
    expect(JSON.stringify(emulator.requests)).not.toContain(openaiKey);
    expect(JSON.stringify(emulator.requests)).not.toContain(masterKey);
  });

  it('changing a model: PATCH /model/{id}/update, a replace for its profile deployment (a slash in the id), and every instance serves the new price', async () => {
    const mark = emulator.requests.length;
    await commit(
      policies.replace('input_per_mtok: 0.15', 'input_per_mtok: 0.1'),
      'policies: gpt-mini is cheaper',
    );
    const report = await controller.apply();
    expect(report.outcome).toBe('applied');
    expect(writesSince(mark).map((r) => `${r.method} ${r.path} ${writtenId(r)}`)).toEqual(
      expect.arrayContaining([
        'PATCH /model/gpt-mini/update gpt-mini',
        'POST /model/delete cheap/gpt-mini',
        'POST /model/new cheap/gpt-mini',
      ]),
    );
    expect(writesSince(mark)).toHaveLength(3);
    for (const url of emulator.urls) {
      const served = await modelInfo(url, masterKey);
      for (const id of ['gpt-mini', 'cheap/gpt-mini'])
        expect(
          served.find((d) => d.model_info.id === id)?.litellm_params.input_cost_per_token,
        ).toBe(1.0e-7);
    }
  });

  it('a setting that must disappear is replaced (delete, then new) because PATCH cannot remove it', async () => {
    const mark = emulator.requests.length;
    await commit(policies.replace('    timeout: 30s\n', ''), 'policies: no openai timeout');
    const report = await controller.apply();
    expect(report.outcome).toBe('applied');
    expect(
      writesSince(mark)
        .filter((r) => writtenId(r) === 'gpt-mini')
        .map((r) => `${r.method} ${r.path}`),
    ).toEqual(['POST /model/delete', 'POST /model/new']);
    for (const url of emulator.urls) {
      const info = (await modelInfo(url, masterKey)).find((d) => d.model_info.id === 'gpt-mini');
      expect(info?.litellm_params).not.toHaveProperty('timeout');
    }
  });

  it('a write LiteLLM refuses halfway is rolled back: the database returns to last-known-good', async () => {
    const lkg = await controller.state.lastKnownGood();
    const rows = [...emulator.rows.keys()].sort();
    emulator.failNextCreates(1);
    await commit(
      policies.replace(
        '\nprofiles:',
        `${GPT_BIG}${GPT_BIG.replaceAll('gpt-big', 'gpt-huge')}\nprofiles:`,
      ),
      'policies: gpt-big and gpt-huge',
    );
    const report = await controller.apply();
    expect(report.outcome).toBe('rolled-back');
    expect(report.problems[0]).toMatch(
      /1 of 2 writes .* failed .*: gpt-(big|huge): .*Failed to add model to db.*apply again/,
    );
    expect(await controller.state.lastKnownGood()).toBe(lkg);
    expect([...emulator.rows.keys()].sort()).toEqual(rows);
    for (const instance of emulator.instances)
      expect(instance.servedIds()).not.toContain('gpt-huge');
    await commit(without(without(policies, 'gpt-huge'), 'gpt-big'), 'policies: undo');
    expect((await controller.apply()).outcome).toBe('applied');
  });

  it('an instance that never converges fails the apply, which is rolled back to last-known-good on every instance', async () => {
    const lkg = await controller.state.lastKnownGood();
    const served = emulator.instances.map((i) => i.servedIds());
    emulator.instances[1]!.setPolling(false);
    try {
      await commit(
        policies.replace('\nprofiles:', `${GPT_BIG}\nprofiles:`),
        'policies: gpt-big again',
      );
      const report = await controller.apply();
      expect(report.outcome).toBe('rolled-back');
      expect(report.problems[0]).toMatch(
        new RegExp(
          `${emulator.urls[1]} did not converge within 2000 ms \\(does not serve gpt-big\\)`,
        ),
      );
      expect(await controller.state.lastKnownGood()).toBe(lkg);
      expect(emulator.instances.map((i) => i.servedIds())).toEqual(served);
      expect(emulator.rows.has('gpt-big')).toBe(false);
    } finally {
      emulator.instances[1]!.setPolling(true);
    }
  });
});

describe('admin-api against LiteLLM without the database features it needs', () => {
  const masterKey = testKey('sk-master-');
  let dir: string;
  let config: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mc-admin-'));
    config = path.join(dir, 'config.yaml');
    await writeFile(
      config,
      'model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/gpt-4o-mini\n    model_info:\n      id: m\n',
    );
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const cases = [
    {
      name: 'no database',
      options: { database: false },
      advice:
        /No DB Connected.*needs LiteLLM with a database.*use the restart or blue-green strategy/,
    },
    {
      name: 'store_model_in_db off',
      options: { storeModelInDb: false },
      advice:
        /STORE_MODEL_IN_DB.*set general_settings.store_model_in_db: true.*restart or blue-green/,
    },
  ];
  it.each(cases)('$name: the reload fails with what to do', async ({ options, advice }) => {
    const emulator = await startDbEmulator({ masterKey, instances: [{}], ...options });
    try {
      const strategy = new AdminApiStrategy({ instances: emulator.urls, masterKey });
      const failure = await strategy.reload(config).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(ReloadError);
      expect((failure as ReloadError).message).toMatch(advice);
    } finally {
      sent.push(...emulator.requests);
      await emulator.close();
    }
  });

  it('the client maps a refused update of a YAML model and a wrong master key to sentences a person can act on', async () => {
    const emulator = await startDbEmulator({
      masterKey,
      instances: [{ yaml: [yamlModel('house-embed')] }],
    });
    try {
      const client = new LiteLLMAdminClient(emulator.urls[0]!, masterKey);
      const refused = await client
        .updateModel({
          model_name: 'house-embed',
          litellm_params: { model: 'openai/x' },
          model_info: { id: 'house-embed' },
        })
        .catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(LiteLLMApiError);
      expect(refused).toMatchObject({ status: 400 });
      expect((refused as Error).message).toMatch(
        /"house-embed" is defined in that instance's own config.yaml.*give the policy model another id/,
      );
      const wrongKey = await new LiteLLMAdminClient(emulator.urls[0]!, testKey())
        .deleteModel('house-embed')
        .catch((error: unknown) => error);
      expect((wrongKey as Error).message).toMatch(
        /refused POST \/model\/delete \(401\).*master key/,
      );
    } finally {
      sent.push(...emulator.requests);
      await emulator.close();
    }
  });
});

/** Checks what the tests above sent: run it with the whole file. */
describe('admin-api contract with the real pinned LiteLLM', () => {
  it('every route, method and request field the client sent exists in the real pinned LiteLLM /openapi.json', async () => {
    const report = checkRequests(await realOpenApi(), sent);
    expect(report.problems).toEqual([]);
    expect(report.routes).toEqual(
      expect.arrayContaining([
        'GET /v1/model/info',
        'PATCH /model/{model_id}/update',
        'POST /model/delete',
        'POST /model/new',
      ]),
    );
  });
});

/** The deployment id a write names, in its body. */
function writtenId(request: RecordedAdminRequest): string {
  const body = request.body as { id?: string; model_info?: { id?: string } };
  return body.id ?? body.model_info?.id ?? '';
}

/** `/v1/model/info` of an emulated instance, as a user would read it. */
async function modelInfo(
  url: string,
  masterKey: string,
): Promise<{ model_info: { id: string }; litellm_params: Record<string, unknown> }[]> {
  const response = await fetch(`${url}/v1/model/info`, {
    headers: { authorization: `Bearer ${masterKey}` },
  });
  return ((await response.json()) as { data: never[] }).data;
}
