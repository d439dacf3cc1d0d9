import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkRequests, type OpenApiDocument } from '../helpers/openapi-contract.js';
import { FIXTURES } from '../helpers/policies.js';

/** The checker the admin-api contract test relies on catches what it exists to catch. */
describe('OpenAPI request checker (fixture: LiteLLM 1.106.12 model routes)', () => {
  const load = async () =>
    JSON.parse(
      await readFile(path.join(FIXTURES, 'openapi', 'litellm-model-routes.json'), 'utf8'),
    ) as OpenApiDocument;
  const deployment = {
    model_name: 'gpt',
    litellm_params: { model: 'openai/gpt-4o', api_key: 'os.environ/OPENAI_API_KEY', order: 1 },
    model_info: { id: 'gpt', modelcenter_sha256: 'abc' },
  };

  it('accepts the requests the admin client sends, naming extras LiteLLM keeps by design', async () => {
    const report = checkRequests(await load(), [
      { method: 'GET', path: '/v1/model/info' },
      { method: 'POST', path: '/model/new', body: deployment },
      { method: 'PATCH', path: '/model/gpt/update', body: deployment },
      { method: 'POST', path: '/model/delete', body: { id: 'gpt' } },
    ]);
    expect(report.problems).toEqual([]);
    expect(report.routes).toEqual([
      'GET /v1/model/info',
      'PATCH /model/{model_id}/update',
      'POST /model/delete',
      'POST /model/new',
    ]);
    expect(report.extras).toContain('POST /model/new model_info.modelcenter_sha256');
    expect(report.extras).toContain('PATCH /model/{model_id}/update litellm_params.order');
  });

  const cases: {
    name: string;
    request: { method: string; path: string; body?: unknown };
    problem: RegExp;
  }[] = [
    {
      name: 'an unknown route',
      request: { method: 'POST', path: '/model/create', body: deployment },
      problem: /POST \/model\/create: no such route/,
    },
    {
      name: 'a path parameter holding a slash (LiteLLM routes on the decoded path)',
      request: { method: 'PATCH', path: '/model/fast/gpt/update', body: deployment },
      problem: /PATCH \/model\/fast\/gpt\/update: no such route/,
    },
    {
      name: 'a known route with the wrong method',
      request: { method: 'POST', path: '/model/gpt/update', body: deployment },
      problem: /serves \/model\/\{model_id\}\/update but not with POST/,
    },
    {
      name: 'an unknown top-level field where pydantic ignores extras',
      request: { method: 'POST', path: '/model/delete', body: { id: 'gpt', force: true } },
      problem: /POST \/model\/delete: field "force" is not in the request body schema/,
    },
    {
      name: 'an unknown field behind anyOf/$ref',
      request: { method: 'PATCH', path: '/model/gpt/update', body: { model_id: 'gpt' } },
      problem: /field "model_id" is not in the request body schema/,
    },
    {
      name: 'a body sent to a route that takes none',
      request: { method: 'GET', path: '/v1/model/info', body: { id: 'gpt' } },
      problem: /GET \/v1\/model\/info: the client sends a JSON body but the route takes none/,
    },
  ];
  it.each(cases)('catches $name', async ({ request, problem }) => {
    const report = checkRequests(await load(), [request]);
    expect(report.problems).toHaveLength(1);
    expect(report.problems[0]).toMatch(problem);
  });
});

/** Query parameters: FastAPI ignores an undeclared one, and rejects a value out of bounds. */
describe('OpenAPI request checker: query parameters (fixture: LiteLLM 1.106.12 /spend/logs/v2)', () => {
  const load = async () =>
    JSON.parse(
      await readFile(path.join(FIXTURES, 'openapi', 'litellm-spend-logs-route.json'), 'utf8'),
    ) as OpenApiDocument;
  const good = {
    start_date: '2026-11-20 10:00:00',
    end_date: '2026-11-20 11:00:00',
    page: '2',
    page_size: '1000',
    sort_by: 'startTime',
    sort_order: 'asc',
  };

  it('accepts the query the backfill sends', async () => {
    const report = checkRequests(await load(), [
      { method: 'GET', path: '/spend/logs/v2', query: good },
    ]);
    expect(report.problems).toEqual([]);
    expect(report.routes).toEqual(['GET /spend/logs/v2']);
  });

  it.each([
    [{ ...good, from: '2026-11-20' }, /query parameter "from" is not declared/],
    [{ ...good, page_size: '5000' }, /"page_size=5000" does not fit/],
    [{ ...good, page: '0' }, /"page=0" does not fit/],
    [{ ...good, page: 'two' }, /"page=two" does not fit/],
    [
      { ...good, exclude_internal_health_checks: 'maybe' },
      /"exclude_internal_health_checks=maybe"/,
    ],
  ])('catches %o', async (query, problem) => {
    const report = checkRequests(await load(), [{ method: 'GET', path: '/spend/logs/v2', query }]);
    expect(report.problems).toHaveLength(1);
    expect(report.problems[0]).toMatch(problem);
  });
});
