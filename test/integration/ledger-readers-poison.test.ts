import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import OpenAI from 'openai';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DIMENSIONS } from '../../src/store/ledger.js';
import { healthPolicies, startHealthFakes, type HealthFakes } from '../helpers/health-scenario.js';
import { deadLetterEntries } from '../helpers/ledger-suite.js';
import { startPostgres, type PostgresCluster } from '../helpers/postgres.js';
import { policyRepo } from '../helpers/repo.js';
import { serveEnv, serveInProcess, until, type ServingInProcess } from '../helpers/serve.js';
import { payload } from '../helpers/spool.js';
import { newKeys } from '../helpers/stack.js';
import { scaled } from '../helpers/timing.js';

vi.setConfig({ testTimeout: scaled(300_000), hookTimeout: scaled(120_000) });

/**
 * Everything that reads the ledger, after poison: rows that were cleaned (so they hold odd but
 * storable values) and payloads that were dead-lettered. The dashboard's views, the reports, the
 * budget check, the key anomaly check and the health ranking by measured latency read these rows;
 * none of them may answer 5xx, put NaN or Infinity in a figure, or stop a job.
 */
describe.each(['PGlite', 'PostgreSQL'] as const)(
  'every reader of the ledger (%s) after poison arrived through POST /v1/spend/ingest',
  (ledger) => {
    const keys = newKeys();
    const token = 'mc-admin-token-for-the-readers-test-0123456789';
    let fakes: HealthFakes;
    let repo: string;
    let service: ServingInProcess;
    let api: string;
    let client: OpenAI;
    const headers = { authorization: `Bearer ${token}` };
    let postgres: PostgresCluster | undefined;

    beforeAll(async () => {
      fakes = await startHealthFakes(keys);
      repo = await policyRepo(
        `${healthPolicies(
          fakes,
          `  evaluate_every: 1s
  ranking: { min_samples: 3, window: 1h, margin: 0.2 }`,
          '  quick: { requires: [chat], prefer: [latency] }',
        )}
callers:
  alice: { description: Alice's agent }
goals:
  budgeted:
    title: A goal with a small budget
    budget: { usd: 0.5, period: 7d, alert_at: [0.8, 1.0] }
`,
      );
      if (ledger === 'PostgreSQL') postgres = await startPostgres();
      const served = await serveEnv(
        keys,
        { admin: token },
        {
          MODELCENTER_POLL_SECONDS: '0.5',
          ...(postgres && { MODELCENTER_LEDGER_URL: postgres.url }),
        },
      );
      api = `http://127.0.0.1:${served.apiPort}`;
      client = new OpenAI({
        baseURL: `http://127.0.0.1:${served.port}/v1`,
        apiKey: keys.master,
        maxRetries: 0,
        timeout: scaled(30_000),
      });
      service = serveInProcess(repo, served.env);
      await service.started();
    });
    afterAll(async () => {
      service?.stop();
      await service?.exit;
      await Promise.all([fakes?.alpha.close(), fakes?.beta.close()]);
      if (repo) await rm(repo, { recursive: true, force: true });
      await postgres?.stop();
    });

    /** A GET or POST to the API: status and the body as text (parsed later, so NaN is visible). */
    async function call(
      method: 'GET' | 'POST',
      route: string,
      body?: string,
    ): Promise<{ status: number; text: string }> {
      const response = await fetch(`${api}${route}`, {
        method,
        headers: { ...headers, 'content-type': 'application/json' },
        ...(body !== undefined && { body }),
      });
      return { status: response.status, text: await response.text() };
    }

    it('answers every report, view and job without a 5xx, a NaN or a stopped job', async () => {
      // The request of issue 10 through the real LiteLLM: a NUL in a tag of its metadata.
      const { response: poisoned } = await client.chat.completions
        .create({
          model: 'beta-chat',
          messages: [{ role: 'user', content: 'poison' }],
          metadata: { tags: ['goal:x\u0000y'] },
        } as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming)
        .withResponse();
      const poisonId = poisoned.headers.get('x-litellm-call-id') ?? '';
      // Real traffic after it, so the ranking has measurements to compare against.
      for (let i = 0; i < 4; i += 1) {
        await client.chat.completions.create({
          model: 'alpha-chat',
          messages: [{ role: 'user', content: `measure ${i}` }],
          metadata: { tags: ['goal:budgeted', 'caller:alice'] },
        } as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming);
        await client.chat.completions.create({
          model: 'beta-chat',
          messages: [{ role: 'user', content: `measure ${i}` }],
        });
      }
      // All of it reaches the ledger: the poison cleaned (NUL removed), the 8 after it as sent.
      await until(async () => {
        const text = (await call('GET', '/v1/spend/report?since=1h')).text;
        return (JSON.parse(text) as { total: { requests: number } }).total.requests >= 9
          ? true
          : undefined;
      });
      const poisonRecord = JSON.parse(
        (await call('GET', `/v1/spend/requests/${encodeURIComponent(poisonId)}`)).text,
      ) as { attempts: { goal: string | null }[] };
      expect(poisonRecord.attempts.map((a) => a.goal)).toEqual(['xy']);
      const config = parse(await readFile(path.join(repo, 'litellm', 'config.yaml'), 'utf8')) as {
        model_list: { model_name: string; model_info: { id: string } }[];
      };
      const alpha = config.model_list.find((d) => d.model_name === 'alpha-chat')!.model_info.id;
      const beta = config.model_list.find((d) => d.model_name === 'beta-chat')!.model_info.id;

      const now = Date.now() / 1000 - 30;
      const at = (id: string, extra: Record<string, unknown> = {}): Record<string, unknown> =>
        payload(id, { startTime: now, endTime: now + 0.2, model_id: beta, ...extra });
      const line = (value: unknown): string => JSON.stringify(value);
      const lines = [
        // Cleaned: NUL and lone surrogates in every dimension the readers group by.
        line(at('r-nul', { request_tags: ['goal:x\u0000y', 'caller:c\u0000d'], model_id: alpha })),
        line(at('r-surrogate', { request_tags: ['goal:\ud800lone', 'caller:\udfffhalf'] })),
        // Cleaned: a negative cost, on the budgeted goal (the budget must not go negative).
        line(at('r-negative', { response_cost: -1e12, request_tags: ['goal:budgeted'] })),
        // JSON's way to Infinity: a number too large for a double, as cost and as tokens.
        line(
          at('r-inf-cost', { response_cost: 987_654_321, request_tags: ['goal:budgeted'] }),
        ).replace('"response_cost":987654321', '"response_cost":1e999'),
        line(at('r-inf-tokens', { prompt_tokens: 987_654_321 })).replace(
          '"prompt_tokens":987654321',
          '"prompt_tokens":-1e999',
        ),
        // Python's json.dumps writes NaN: not JSON, dead-lettered.
        line(at('r-nan-tokens', { completion_tokens: 987_654_321 })).replace(
          '"completion_tokens":987654321',
          '"completion_tokens":NaN',
        ),
        // Dates: 1970 and 9999 starts are dead-lettered; a 9999 end is cleaned.
        line(at('r-1970', { startTime: 10, endTime: 11 })),
        line(at('r-9999', { startTime: 253_402_300_000, endTime: 253_402_300_001 })),
        line(at('r-end-9999', { endTime: 253_402_300_001 })),
        // Over-long values: cut (a goal) or dead-lettered (a call id).
        line(at('r-long-goal', { request_tags: [`goal:${'g'.repeat(20_000)}`] })),
        line(at(`r-long-id-${'i'.repeat(20_000)}`)),
        // Odd but storable: names that are also JavaScript's own properties, "-" (the filter's
        // "not set"), a latency of 50 years on a real deployment, the largest tokens and cost.
        line(at('r-proto', { request_tags: ['goal:__proto__', 'caller:constructor'] })),
        line(at('r-dash', { request_tags: ['goal:-', 'caller:toString'] })),
        line(at('r-slow', { model_id: alpha, endTime: now + 50 * 365 * 86_400 })),
        line(at('r-big', { prompt_tokens: 2_147_483_647, completion_tokens: 2_147_483_647 })),
        line(at('r-costly', { response_cost: 999_999, request_tags: ['caller:alice'] })),
        line(at('r-stream', { stream: true, completionStartTime: now - 10_000 })),
        // A deeply nested value inside an otherwise good payload.
        line(at('r-nested')).replace(
          /"metadata":\{/,
          `"deep":${'['.repeat(5000)}${']'.repeat(5000)},"metadata":{`,
        ),
        // A real cost on the budgeted goal: past its 0.8 threshold of $0.50.
        line(at('r-budget', { response_cost: 0.45, request_tags: ['goal:budgeted'] })),
        ...Array.from({ length: 20 }, (_, i) => line(at(`r-good-${i}`))),
      ];
      const ingest = await call('POST', '/v1/spend/ingest', lines.join('\n'));
      expect(ingest.status).toBe(200);
      const ingested = JSON.parse(ingest.text) as {
        inserted: number;
        rejected: number;
        cleaned: number;
      };
      // 1970, 9999, the long call id and NaN are dead-lettered; every other line is stored.
      expect(ingested).toMatchObject({ inserted: lines.length - 4, rejected: 4 });
      // NUL, surrogates, negative cost, infinite cost, infinite tokens, a 9999 end, the long goal.
      expect(ingested.cleaned).toBe(7);

      // Bodies that are not a payload at all, and one nested deeper than any parser's stack.
      expect((await call('POST', '/v1/spend/ingest', 'not JSON at all')).status).toBe(400);
      expect((await call('POST', '/v1/spend/ingest', '42')).status).toBe(400);
      const deep = await call(
        'POST',
        '/v1/spend/ingest',
        `${'['.repeat(200_000)}${']'.repeat(200_000)}`,
      );
      // JSON after all: one array that is not a payload, dead-lettered like any other.
      expect(deep.status).toBe(200);
      expect(JSON.parse(deep.text)).toMatchObject({ inserted: 0, rejected: 1 });

      // Every job runs to the end, reading those rows.
      const jobs = JSON.parse((await call('GET', '/v1/jobs')).text) as {
        jobs: { name: string }[];
      };
      for (const { name } of jobs.jobs) {
        if (name === 'spend-backfill') continue; // needs LiteLLM's database (not in this set-up)
        const run = await call('POST', `/v1/jobs/${name}/run`, '{}');
        expect({ name, status: run.status }).toEqual({ name, status: 200 });
        expect(JSON.parse(run.text)).toMatchObject({ job: name, outcome: 'ok' });
      }
      await call('POST', '/v1/health/evaluate', '{}');

      // Every reader the dashboard, the CLI and an operator use.
      const since = encodeURIComponent(new Date((now - 3600) * 1000).toISOString());
      const routes = [
        '/v1/status',
        '/v1/spend/report?since=1h',
        ...DIMENSIONS.map((by) => `/v1/spend/report?since=1h&groupBy=${by}`),
        '/v1/spend/report?since=1h&groupBy=goal,caller&goal=-',
        '/v1/spend/report?since=1h&groupBy=goal&goal=__proto__',
        `/v1/spend/report?since=${since}&groupBy=caller&caller=constructor`,
        '/v1/spend/series?since=1h&bucket=hour',
        '/v1/spend/series?since=1h&bucket=hour&by=caller',
        '/v1/spend/series?since=1h&bucket=hour&by=deployment',
        '/v1/spend/series?since=30d',
        '/v1/spend/budgets',
        '/v1/spend/requests/r-nul',
        '/v1/spend/requests/r-slow',
        '/v1/spend/requests/r-big',
        '/v1/spend/requests/r-stream',
        '/v1/keys',
        '/v1/health/providers',
        '/v1/jobs',
        '/metrics',
        '/ui/',
      ];
      for (const route of routes) {
        const answer = await call('GET', route);
        expect({ route, status: answer.status }).toEqual({ route, status: 200 });
        expect({ route, nan: /\bNaN\b|Infinity/.test(answer.text) }).toEqual({ route, nan: false });
        if (route !== '/metrics' && route !== '/ui/') JSON.parse(answer.text);
      }

      // The figures are what a person expects: no negative or infinite cost, the poison visible.
      const report = JSON.parse(
        (await call('GET', '/v1/spend/report?since=1h&groupBy=goal')).text,
      ) as {
        total: { requests: number; costUsd: number; tokensIn: number };
        lines: { keys: { goal: string | null }; requests: number; costUsd: number }[];
      };
      expect(report.total.requests).toBe(9 + lines.length - 4);
      expect(report.total.costUsd).toBeGreaterThan(999_999);
      expect(report.total.costUsd).toBeLessThan(1_000_001);
      for (const l of report.lines) expect(l.costUsd).toBeGreaterThanOrEqual(0);
      expect(report.lines.map((l) => l.keys.goal)).toEqual(
        expect.arrayContaining(['xy', '\ufffdlone', '__proto__', '-']),
      );
      const record = JSON.parse((await call('GET', '/v1/spend/requests/r-negative')).text) as {
        attempts: { costUsd: number }[];
      };
      expect(record.attempts[0]?.costUsd).toBe(0);

      // Budgets are still checked: the budgeted goal's spend is the real $0.45 (the negative and
      // infinite costs count as unknown), and its 0.8 threshold fires (the check runs every 30 s).
      const budgets = async (): Promise<{
        budgets: { name: string; spendUsd: number; reached: number[] }[];
        alerts: { budget: string; threshold: number }[];
      }> => JSON.parse((await call('GET', '/v1/spend/budgets')).text) as never;
      const budgeted = (await budgets()).budgets.find((b) => b.name.includes('budgeted'));
      expect(budgeted?.spendUsd).toBeGreaterThanOrEqual(0.45);
      expect(budgeted?.spendUsd).toBeLessThan(0.46);
      const alert = await until(async () =>
        (await budgets()).alerts.find((a) => a.budget.includes('budgeted')),
      );
      expect(alert.threshold).toBe(0.8);

      // The health ranking measured latency; the 50-year request did not become a figure.
      const health = JSON.parse((await call('GET', '/v1/health/providers')).text) as {
        providers: { provider: string; p50LatencyMs?: number }[];
      };
      for (const p of health.providers)
        if (p.p50LatencyMs !== undefined) expect(Number.isFinite(p.p50LatencyMs)).toBe(true);

      // Counted where an operator looks: status and /metrics (the spool's NUL and the API's).
      const status = JSON.parse((await call('GET', '/v1/status')).text) as {
        spend: { cleaned: Record<string, number>; deadLettered: Record<string, number> };
      };
      expect(status.spend.cleaned).toMatchObject({ nul: 2, surrogate: 1, cost: 2, tokens: 1 });
      expect(status.spend.deadLettered).toMatchObject({
        'date-out-of-range': 2,
        'not-json': 1,
        'too-long': 1,
        'not-a-payload': 1,
      });
      expect((await call('GET', '/metrics')).text).toContain(
        'modelcenter_spend_records_problems_total{outcome="cleaned",reason="nul"} 2',
      );
      // The dead letters are in the file, each once, with why.
      const entries = await deadLetterEntries(path.join(repo, '.modelcenter', 'spend-dead-letter'));
      expect(entries.map((e) => e.reason).sort()).toEqual([
        'date-out-of-range',
        'date-out-of-range',
        'not-a-payload',
        'not-json',
        'too-long',
      ]);
      // Nothing logged as a failure by the spend loop, the budget check or a job.
      await until(() => Promise.resolve(service.logs().includes('"budget') || true), 5_000);
      expect(service.logs()).not.toMatch(/budget check failed|spool ingestion failed|job failed/);
    });
  },
);
