import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorBodySchema } from '../../src/api/server.js';
import { apiRequests, checkAnswer, type OpenApiDocument } from '../helpers/api-property.js';
import { git, policyRepo } from '../helpers/repo.js';
import { testKey } from '../helpers/secrets.js';
import { serveEnv, serveInProcess, type ServingInProcess } from '../helpers/serve.js';
import { allFakes, newKeys, scenarioPolicies, startFakes, type Fakes } from '../helpers/stack.js';

/**
 * The real service (`serve` in-process: real LiteLLM, real git, the embedded ledger) against
 * client input: the cases that answered 5xx before, then generated requests over every route.
 */
describe('the API never answers 5xx to client input (real serve)', () => {
  const keys = newKeys();
  const tokens = { admin: testKey('mc-admin-'), read: testKey('mc-read-') };
  let fakes: Fakes;
  let repo: string;
  let running: ServingInProcess;
  let api: string;
  let holder: ChildProcess | undefined;

  beforeAll(async () => {
    fakes = await startFakes(keys);
    repo = await policyRepo(scenarioPolicies(fakes));
    const { env, apiPort } = await serveEnv(keys, tokens, { MODELCENTER_POLL_SECONDS: '3600' });
    running = serveInProcess(repo, env);
    await running.started();
    api = `http://127.0.0.1:${apiPort}`;
  });
  afterAll(async () => {
    holder?.kill();
    running.stop();
    await running.exit;
    await Promise.all(allFakes(fakes).map((f) => f.close()));
    await rm(repo, { recursive: true, force: true });
  });

  const call = async (method: string, target: string, body?: string) => {
    const response = await fetch(`${api}${target}`, {
      method,
      headers: { authorization: `Bearer ${tokens.admin}`, 'content-type': 'application/json' },
      ...(body !== undefined && { body }),
    });
    const text = await response.text();
    const error =
      response.status >= 400 && text ? errorBodySchema.parse(JSON.parse(text)).error : undefined;
    return { status: response.status, text, error };
  };
  const failedApplies = async () =>
    Number(
      /modelcenter_applies_total\{outcome="failed"\} (\d+)/.exec(
        (await call('GET', '/metrics')).text,
      )?.[1],
    );

  it('each case that answered 5xx (or worse) before is a 4xx naming the parameter', async () => {
    expect(await call('GET', '/v1/spend/requests/abc%00def')).toMatchObject({
      status: 400,
      error: { field: 'path.callId' },
    });
    expect(await call('GET', '/v1/spend/report?goal=x%00y')).toMatchObject({
      status: 400,
      error: { field: 'query.goal' },
    });
    for (const since of ['99999999d', '0000-01-01', '2026-02-30', '2026-11-01T24:00']) {
      const answer = await call('GET', `/v1/spend/report?since=${since}`);
      expect(answer, since).toMatchObject({ status: 400, error: { field: 'query.since' } });
    }
    expect((await call('GET', '/v1/spend/report?since=2026-02-30')).error?.message).toMatch(
      /2026-02 has 28 days/,
    );
    expect(await call('POST', '/v1/spend/backfill', '{"since": "2026-02-30"}')).toMatchObject({
      status: 400,
      error: { field: 'body.since' },
    });
    expect((await call('GET', '/v1/spend/report?since=2026-02-28')).status).toBe(200);

    const failedBefore = await failedApplies();
    const previous = await call('POST', '/v1/rollback', '{"to": "HEAD~1"}');
    expect(previous).toMatchObject({
      status: 400,
      error: { code: 'not_generated', field: 'body.to' },
    });
    expect(previous.error?.message).toMatch(/"policies: initial"\) is not a generated commit/);
    const range = await call('POST', '/v1/rollback', '{"to": "HEAD~1..HEAD"}');
    expect(range).toMatchObject({ status: 400, error: { field: 'body.to' } });
    expect(range.error?.message).toMatch(/names a range or an expression, not one commit/);
    expect((await call('POST', '/v1/rollback', '{"to": "HEAD~7"}')).status).toBe(404);
    expect(await failedApplies()).toBe(failedBefore);
    const status = JSON.parse((await call('GET', '/v1/status')).text) as {
      lastApply?: unknown;
    };
    expect(status.lastApply).toBeUndefined(); // a refused target is not an apply

    // Found by the property run: an ingest body nested deeper than the stack cannot be written
    // to the dead-letter file as JSON; it is rejected and the batch answered, not a 500.
    const deep = await call('POST', '/v1/spend/ingest', `${'['.repeat(5000)}${']'.repeat(5000)}`);
    expect(deep.status).toBe(200);
    expect(JSON.parse(deep.text)).toMatchObject({ inserted: 0, rejected: 1 });

    const head = await fetch(`${api}/healthz`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
  });

  it('the new routes (providers, models, keys, health, dashboard) answer hostile names and ids with 4xx naming the parameter', async () => {
    // Found by hand: a promoted id looked up through the pool's prototype answered 500.
    for (const id of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      const promote = await call('POST', '/v1/models/promote', JSON.stringify({ ids: [id] }));
      expect(promote, id).toMatchObject({ status: 404, error: { field: 'body.ids' } });
    }
    // POST /v1/providers shares its template with GET: its errors name the body field.
    const badName = await call('POST', '/v1/providers', '{"name": "../x", "provider": {}}');
    expect(badName).toMatchObject({ status: 422, error: { field: 'body.name' } });
    for (const name of ['__proto__', 'constructor', '..%2Fx', 'x'.repeat(5000)]) {
      for (const [method, target, body] of [
        ['PUT', `/v1/providers/${name}`, '{"provider": {"kind": "openai"}}'],
        ['DELETE', `/v1/providers/${name}`, '{}'],
        ['POST', `/v1/providers/${name}/sync`, '{}'],
        ['POST', `/v1/providers/${name}/pull`, '{"model": "x"}'],
        ['GET', `/v1/models/${name}`, undefined],
        ['PUT', `/v1/models/${name}/enabled`, '{"enabled": false}'],
        ['POST', `/v1/credentials/${name}/rotate`, '{"value": "abcdefgh12345678"}'],
        ['POST', `/v1/keys/${name}/rotate`, '{}'],
        ['POST', `/v1/keys/${name}/delivery`, '{}'],
        ['GET', `/ui/${name}`, undefined],
      ] as const) {
        const answer = await call(method, target, body);
        expect(answer.status, `${method} ${target.slice(0, 80)}`).toBe(404);
        expect(answer.error?.field, `${method} ${target.slice(0, 80)}`).toMatch(/^path\./);
      }
    }
    for (const since of ['99999999d', '0000-01-01', '2026-02-30']) {
      for (const route of ['/v1/spend/series', '/v1/keys/audit']) {
        const answer = await call('GET', `${route}?since=${since}`);
        expect(answer, `${route} ${since}`).toMatchObject({
          status: 400,
          error: { field: 'query.since' },
        });
      }
    }
    const reversed = await call('GET', '/v1/spend/report?since=2026-02-01&until=2026-01-01');
    expect(reversed).toMatchObject({ status: 400, error: { field: 'query.since' } });
    // The controller's own secrets are never sent to a provider under test.
    const test = await call(
      'POST',
      '/v1/providers/test',
      JSON.stringify({
        provider: {
          kind: 'openai_compatible',
          base_url: `${fakes.openai.url}/v1`,
          credential: 'env:LITELLM_MASTER_KEY',
        },
      }),
    );
    const tested = JSON.parse(test.text) as { ok: boolean; reachable: boolean; error?: string };
    expect(tested).toMatchObject({ ok: false, reachable: false });
    expect(tested.error).toMatch(/names one of Model Center's own secrets/);
    expect(fakes.openai.requests.some((r) => JSON.stringify(r).includes(keys.master))).toBe(false);
  });

  it('property: generated requests over every route of the OpenAPI document get no 5xx, and every error has the one shape', async () => {
    // Another controller is applying (its lock holds a live pid), so a valid apply, reload or
    // rollback answers 409 at once instead of restarting LiteLLM hundreds of times; every
    // check of a request's input runs before the lock.
    // Discovered ids to promote (before the lock: a sync is not an apply).
    const synced = JSON.parse((await call('POST', '/v1/providers/groq/sync', '{}')).text) as {
      added: string[];
    };
    const discovered = synced.added;
    expect(discovered.length).toBeGreaterThan(0);
    holder = spawn('sleep', ['600'], { stdio: 'ignore' });
    const stateDir = path.join(repo, '.modelcenter');
    await mkdir(stateDir, { recursive: true });
    await writeFile(path.join(stateDir, 'apply.lock'), String(holder.pid));
    expect((await call('POST', '/v1/apply', '{}')).status).toBe(409);

    const doc = JSON.parse((await call('GET', '/openapi.json')).text) as OpenApiDocument;
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/v1/spend/report', '/v1/spend/requests/{callId}']),
    );
    // Every route of the document is exercised, the new ones included.
    for (const route of [
      '/v1/providers/{name}',
      '/v1/models/promote',
      '/v1/models/{id}/enabled',
      '/v1/keys/audit',
      '/v1/credentials/{provider}/rotate',
      '/v1/keys/{caller}/rotate',
      '/v1/health/evaluate',
      '/v1/spend/series',
      '/ui/{file}',
    ])
      expect(Object.keys(doc.paths)).toContain(route);
    const known = [
      'drift-check',
      git(repo, 'rev-parse', 'HEAD'),
      'goal',
      'day',
      ...['openai', 'groq', 'local-ollama', 'gpt-mini', 'llama-small', 'fast', 'index.html'],
      ...discovered,
    ];
    await fc.assert(
      fc.asyncProperty(apiRequests(doc, known), (request) => checkAnswer(api, request, tokens)),
      { numRuns: 2500 },
    );
  }, 240_000);
});
