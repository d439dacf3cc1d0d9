import { readFile, rm } from 'node:fs/promises';
import OpenAI from 'openai';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { launchChromium, loopbackOnlyContext, screenshot, signIn } from '../helpers/browser.js';
import { commitPolicies, git, policyRepo } from '../helpers/repo.js';
import { serveEnv, serveInProcess, until, type ServingInProcess } from '../helpers/serve.js';
import { spendPolicies } from '../helpers/spend.js';
import { allFakes, newKeys, startFakes, type Fakes } from '../helpers/stack.js';
import { scaled } from '../helpers/timing.js';

vi.setConfig({ testTimeout: scaled(180_000), hookTimeout: scaled(300_000) });

const ADMIN = 'mc-dashboard-admin-token-for-this-test-only';
const READ = 'mc-dashboard-read-token-for-this-test-only';

/**
 * The goals the traffic uses, and how many requests each: `budgeted` (a $0.60 budget in the
 * policies, about $0.05 a request) goes past its 80 % and 100 % thresholds.
 */
const TRAFFIC = { 'q-report': 4, 'side-quest': 2, budgeted: 14 } as const;

interface Status {
  generatedCommit?: { commit: string };
  lastKnownGood?: string;
  instances: { ready: boolean; servedCommit?: string }[];
}

interface Report {
  lines: { keys: { goal: string | null }; costUsd: number; requests: number }[];
  total: { costUsd: number; requests: number };
}

describe('the dashboard at /ui/ (headless Chromium, a real LiteLLM, traffic through it)', () => {
  const keys = newKeys();
  let fakes: Fakes;
  let repo: string;
  let service: ServingInProcess;
  let api: string;
  let litellm: OpenAI;
  let browser: Browser;
  let firstGenerated: string;
  /** Every request the pages made to a host other than loopback. */
  const foreign: string[] = [];

  const apiGet = async <T>(route: string, token = ADMIN): Promise<T> => {
    const response = await fetch(`${api}${route}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    if (!response.ok) throw new Error(`${route}: ${response.status} ${await response.text()}`);
    return (await response.json()) as T;
  };

  const openDashboard = async (): Promise<Page> => {
    const { context, foreign: seen } = await loopbackOnlyContext(browser);
    const page = await context.newPage();
    page.on('close', () => foreign.push(...seen));
    await page.goto(`${api}/ui/`);
    return page;
  };

  beforeAll(async () => {
    fakes = await startFakes(keys);
    repo = await policyRepo(spendPolicies(fakes));
    const { env, port, apiPort } = await serveEnv(
      keys,
      { admin: ADMIN, read: READ },
      { MODELCENTER_POLL_SECONDS: '0.5', MODELCENTER_RELOAD_STRATEGY: 'restart' },
    );
    api = `http://127.0.0.1:${apiPort}`;
    service = serveInProcess(repo, env);
    await service.started();
    firstGenerated = (await apiGet<Status>('/v1/status')).generatedCommit!.commit;

    // A second policy commit: a `premium` profile on gpt-mini, applied by the commit trigger.
    const withPremium = spendPolicies(fakes).replace(
      'profiles:\n',
      'profiles:\n  premium:\n    requires: [chat]\n    models: [gpt-mini]\n',
    );
    await commitPolicies(repo, withPremium, 'policies: add the premium profile');
    await until(async () => {
      const status = await apiGet<Status>('/v1/status');
      return status.lastKnownGood !== firstGenerated &&
        status.instances.every((i) => i.ready && i.servedCommit === status.lastKnownGood)
        ? true
        : undefined;
    });

    litellm = new OpenAI({
      baseURL: `http://127.0.0.1:${port}/v1`,
      apiKey: keys.master,
      maxRetries: 0,
    });
    for (const [goal, count] of Object.entries(TRAFFIC)) {
      for (let i = 0; i < count; i += 1) {
        await litellm.chat.completions.create({
          model: 'gpt-mini',
          messages: [{ role: 'user', content: `dashboard ${goal} ${i}` }],
          tags: [`goal:${goal}`, 'caller:alice'],
        } as OpenAI.ChatCompletionCreateParamsNonStreaming);
      }
    }
    const sent = Object.values(TRAFFIC).reduce((a, b) => a + b, 0);
    await until(async () => {
      const report = await apiGet<Report>('/v1/spend/report?groupBy=goal&since=1d');
      return report.total.requests >= sent ? true : undefined;
    });
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    service?.stop();
    await service?.exit;
    await Promise.all(allFakes(fakes).map((f) => f.close()));
    await rm(repo, { recursive: true, force: true });
    // Checked last, after every page has closed: no request left loopback.
    expect(foreign).toEqual([]);
  });

  it('a wrong token gets the login view, with the refusal said', async () => {
    const page = await openDashboard();
    await page.waitForSelector('[data-view=login]');
    await signIn(page, 'mc-not-a-token-of-this-controller');
    await expect(page.getByTestId('login-error').textContent()).resolves.toMatch(/refused/);
    expect(await page.locator('header').count()).toBe(0);
    await screenshot(page, 'login');
    await page.close();
  });

  it('loads with a token, keeps it for the session, and shows the live state as the API has it', async () => {
    const page = await openDashboard();
    await signIn(page, ADMIN);
    await page.waitForSelector('[data-view=live]');
    const status = await apiGet<Status>('/v1/status');
    await expect(page.getByTestId('generated-commit').textContent()).resolves.toContain(
      status.generatedCommit!.commit.slice(0, 12),
    );
    await expect(page.getByTestId('scope').textContent()).resolves.toBe('admin token');
    // Every instance, with the commit it serves.
    await page.waitForSelector('[data-table=instances] .tabulator-row');
    const instanceRows = await page
      .locator('[data-table=instances] .tabulator-row')
      .allTextContents();
    expect(instanceRows).toHaveLength(status.instances.length);
    for (const row of instanceRows) expect(row).toContain(status.lastKnownGood!.slice(0, 12));
    // The applies so far: the start and the policy commit.
    await page.waitForSelector('[data-table=applies] .tabulator-row');
    const applies = await page.locator('[data-table=applies] .tabulator-row').allTextContents();
    expect(applies.some((row) => row.includes('policy-commit') && row.includes('applied'))).toBe(
      true,
    );
    expect(applies.some((row) => row.includes('start'))).toBe(true);

    // The token is kept for the browser session: a reload does not ask again.
    await page.reload();
    await page.waitForSelector('[data-view=live]');
    expect(await page.locator('[data-view=login]').count()).toBe(0);
    await page.waitForSelector('[data-table=commits] .tabulator-row');
    await screenshot(page, 'live-state');
    await page.close();
  });

  it('the spend chart shows exactly the goals the traffic used, with the totals of the API report', async () => {
    const page = await openDashboard();
    await signIn(page, ADMIN);
    await page.click('[data-tab=spend]');
    await page.waitForSelector('[data-testid=chart-series] li');
    // What the chart drew: each dataset's label and total, as the page reads them back from it.
    const drawn: { goal: string | null; total: number }[] = [];
    for (const item of await page.locator('[data-testid=chart-series] li').all()) {
      drawn.push({
        goal: await item.getAttribute('data-series'),
        total: Number(await item.getAttribute('data-total')),
      });
    }
    const report = await apiGet<Report>('/v1/spend/report?groupBy=goal&since=7d');
    expect(drawn.map((d) => d.goal).sort()).toEqual(Object.keys(TRAFFIC).sort());
    expect(report.lines.map((l) => l.keys.goal).sort()).toEqual(Object.keys(TRAFFIC).sort());
    for (const line of report.lines) {
      expect(line.costUsd).toBeGreaterThan(0);
      expect(drawn.find((d) => d.goal === line.keys.goal)?.total).toBeCloseTo(line.costUsd, 9);
    }
    await expect(page.getByTestId('series-total').textContent()).resolves.toContain(
      `$${report.total.costUsd.toFixed(6)}`,
    );
    // Budgets as bars with the thresholds reached, and the alerts the budget check raised.
    await until(async () => {
      const budgets = await apiGet<{ alerts: { budget: string; threshold: number }[] }>(
        '/v1/spend/budgets',
      );
      return budgets.alerts.filter((a) => a.budget === 'goal:budgeted').length === 2
        ? true
        : undefined;
    });
    await page.reload();
    await page.waitForSelector('[data-table=alerts] .tabulator-row');
    const alerts = await page.locator('[data-table=alerts] .tabulator-row').allTextContents();
    expect(alerts.map((a) => /goal:budgeted/.test(a) && /(80|100)\.0 %/.exec(a)?.[1])).toEqual([
      '100',
      '80',
    ]);
    await expect(
      page.locator('[data-budget="goal:budgeted"] [data-testid=reached]').textContent(),
    ).resolves.toContain('reached 80 %, 100 %');
    // The top goals, and a report downloadable as CSV.
    await page.waitForSelector('[data-table=top-goals] .tabulator-row');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByTestId('top-goals-csv').click(),
    ]);
    const csv = await readFile(await download.path(), 'utf8');
    expect(csv.split('\n')[0]).toMatch(/goal.*Cost.*Requests/);
    for (const goal of Object.keys(TRAFFIC)) expect(csv).toContain(goal);
    // Any report as a table: goal × provider, as the API answers it.
    await page.getByTestId('run-report').click();
    await page.waitForSelector('[data-table=report-goal-provider] .tabulator-row');
    const rows = await page
      .locator('[data-table=report-goal-provider] .tabulator-row')
      .allTextContents();
    const byProvider = await apiGet<Report>('/v1/spend/report?groupBy=goal,provider&since=7d');
    expect(rows).toHaveLength(byProvider.lines.length);
    for (const line of byProvider.lines)
      expect(
        rows.some((r) => r.includes(line.keys.goal!) && r.includes(`$${line.costUsd.toFixed(4)}`)),
      ).toBe(true);
    await screenshot(page, 'spend');
    await page.close();
  });

  it('a rollback from the page ends in the verified rolled-back state', async () => {
    const page = await openDashboard();
    await signIn(page, ADMIN);
    await page.waitForSelector('[data-table=commits] .tabulator-row');
    const row = page
      .locator('[data-table=commits] .tabulator-row')
      .filter({ hasText: firstGenerated.slice(0, 12) });
    await row.locator('button.rollback').click();
    await expect(page.getByTestId('confirm').textContent()).resolves.toContain(
      `Roll back to ${firstGenerated.slice(0, 12)}`,
    );
    await page.getByTestId('confirm-yes').click();
    const verified = page.getByTestId('outcome-verified');
    await verified.waitFor({ timeout: scaled(120_000) });
    await until(async () =>
      (await verified.getAttribute('data-verified')) === 'true' ? true : undefined,
    );

    // The API agrees: the live config is the first commit's again, on every instance.
    const status = await apiGet<Status>('/v1/status');
    expect(status.instances.every((i) => i.ready && i.servedCommit === status.lastKnownGood)).toBe(
      true,
    );
    expect(git(repo, 'show', `${status.lastKnownGood!}:litellm/config.yaml`)).toBe(
      git(repo, 'show', `${firstGenerated}:litellm/config.yaml`),
    );
    const models = (await litellm.models.list()).data.map((m) => m.id);
    expect(models).not.toContain('premium');
    await expect(page.getByTestId('outcome-verified').textContent()).resolves.toContain(
      status.lastKnownGood!.slice(0, 12),
    );
    await screenshot(page, 'live-state-after-rollback');
    await page.close();
  });

  it('a read token sees everything but no mutating control, and the API refuses the call anyway', async () => {
    const page = await openDashboard();
    await signIn(page, READ);
    await page.waitForSelector('[data-table=commits] .tabulator-row');
    await expect(page.getByTestId('scope').textContent()).resolves.toBe('read token');
    expect(
      await page.locator('[data-action], button.rollback, [data-testid=confirm]').count(),
    ).toBe(0);
    await screenshot(page, 'read-token');
    await page.click('[data-tab=spend]');
    await page.waitForSelector('[data-testid=chart-series] li');
    expect(await page.locator('[data-testid=call-lookup] form').count()).toBe(0);

    const token = await page.evaluate<string | null>("sessionStorage.getItem('modelcenter.token')");
    for (const [route, body] of [
      ['/v1/rollback', { to: firstGenerated }],
      ['/v1/apply', {}],
      ['/v1/reload', {}],
    ] as const) {
      const refused = await fetch(`${api}${route}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(refused.status).toBe(403);
    }
    await page.close();
  });
});
