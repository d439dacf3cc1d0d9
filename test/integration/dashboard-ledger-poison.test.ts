import { rm } from 'node:fs/promises';
import OpenAI from 'openai';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { launchChromium, loopbackOnlyContext, signIn } from '../helpers/browser.js';
import { policyRepo } from '../helpers/repo.js';
import { serveEnv, serveInProcess, until, type ServingInProcess } from '../helpers/serve.js';
import { spendPolicies } from '../helpers/spend.js';
import { allFakes, newKeys, startFakes, type Fakes } from '../helpers/stack.js';
import { scaled } from '../helpers/timing.js';

vi.setConfig({ testTimeout: scaled(180_000), hookTimeout: scaled(300_000) });

const ADMIN = 'mc-dashboard-poison-admin-token-for-this-test-only';
/** A goal any LiteLLM client can send in its tags: markup that runs script if a page renders it. */
const HOSTILE_GOAL = '<img src=x onerror="window.__poisoned=1">';

/**
 * The ledger holds whatever LiteLLM's clients put in their tags; the dashboard shows it to an
 * administrator whose token is in the page's session storage. One request through the real
 * LiteLLM with a goal that is markup must show as text and run nothing.
 */
describe('the dashboard shows a hostile goal from the ledger as text (headless Chromium)', () => {
  const keys = newKeys();
  let fakes: Fakes;
  let repo: string;
  let service: ServingInProcess;
  let api: string;
  let browser: Browser;

  beforeAll(async () => {
    fakes = await startFakes(keys);
    repo = await policyRepo(spendPolicies(fakes));
    const { env, port, apiPort } = await serveEnv(
      keys,
      { admin: ADMIN },
      { MODELCENTER_POLL_SECONDS: '0.5', MODELCENTER_RELOAD_STRATEGY: 'restart' },
    );
    api = `http://127.0.0.1:${apiPort}`;
    service = serveInProcess(repo, env);
    await service.started();
    const litellm = new OpenAI({
      baseURL: `http://127.0.0.1:${port}/v1`,
      apiKey: keys.master,
      maxRetries: 0,
    });
    await litellm.chat.completions.create({
      model: 'gpt-mini',
      messages: [{ role: 'user', content: 'hello' }],
      tags: [`goal:${HOSTILE_GOAL}`, `caller:${HOSTILE_GOAL}`],
    } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    await until(async () => {
      const response = await fetch(`${api}/v1/spend/report?groupBy=goal&since=1d`, {
        headers: { authorization: `Bearer ${ADMIN}` },
      });
      const report = (await response.json()) as { lines: { keys: { goal: string | null } }[] };
      return report.lines.some((l) => l.keys.goal === HOSTILE_GOAL) ? true : undefined;
    });
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    service?.stop();
    await service?.exit;
    if (fakes) await Promise.all(allFakes(fakes).map((f) => f.close()));
    if (repo) await rm(repo, { recursive: true, force: true });
  });

  it('in the chart, the top goals and the report table: the markup as text, no script run', async () => {
    const { context } = await loopbackOnlyContext(browser);
    const page = await context.newPage();
    await page.goto(`${api}/ui/`);
    await signIn(page, ADMIN);
    await page.click('[data-tab=spend]');
    await page.waitForSelector('[data-table=top-goals] .tabulator-row');
    await page.getByTestId('run-report').click();
    await page.waitForSelector('[data-table^=report-] .tabulator-row');
    const rows = await page.locator('[data-table^=report-] .tabulator-row').allTextContents();
    expect(rows.some((r) => r.includes(HOSTILE_GOAL))).toBe(true);
    const top = await page.locator('[data-table=top-goals] .tabulator-row').allTextContents();
    expect(top.some((r) => r.includes(HOSTILE_GOAL))).toBe(true);
    // No element the markup would have made, and its handler never ran.
    expect(await page.locator('[data-table] img').count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as { __poisoned?: number }).__poisoned)).toBe(
      undefined,
    );
    await context.close();
  });
});
