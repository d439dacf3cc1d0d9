import { rm } from 'node:fs/promises';
import OpenAI from 'openai';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { fingerprint } from '../../src/keys/audit.js';
import type { FakeUpstream } from '../fakes/core.js';
import { startOpenAIFake } from '../fakes/openai.js';
import { launchChromium, loopbackOnlyContext, screenshot, signIn } from '../helpers/browser.js';
import { git, policyRepo } from '../helpers/repo.js';
import { testKey } from '../helpers/secrets.js';
import { serveEnv, serveInProcess, until, type ServingInProcess } from '../helpers/serve.js';
import { allFakes, newKeys, scenarioPolicies, startFakes, type Fakes } from '../helpers/stack.js';
import { scaled } from '../helpers/timing.js';

// serve with a real LiteLLM, a promotion (a verified apply) and a rotation (a LiteLLM restart).
vi.setConfig({ testTimeout: scaled(240_000), hookTimeout: scaled(300_000) });

const ADMIN = 'mc-dashboard-admin-token-for-the-providers-keys-test';
const READ = 'mc-dashboard-read-token-for-the-providers-keys-test';

interface Credential {
  provider: string;
  fingerprint?: string;
}

describe('the dashboard providers and keys views (headless Chromium, a real LiteLLM)', () => {
  const keys = newKeys();
  const novaKey = testKey('nova-');
  const newOpenAI = testKey();
  let fakes: Fakes;
  let nova: FakeUpstream;
  let repo: string;
  let service: ServingInProcess;
  let api: string;
  let litellm: OpenAI;
  let browser: Browser;
  /** Every request the pages made to a host other than loopback. */
  const foreign: string[] = [];

  const apiCall = async <T>(
    method: string,
    route: string,
    body?: unknown,
    token = ADMIN,
  ): Promise<{ status: number; body: T }> => {
    const response = await fetch(`${api}${route}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: (await response.json()) as T };
  };
  const apiGet = async <T>(route: string): Promise<T> => {
    const answer = await apiCall<T>('GET', route);
    if (answer.status !== 200) throw new Error(`${route}: ${answer.status}`);
    return answer.body;
  };
  const policyCommits = () => Number(git(repo, 'rev-list', '--count', 'HEAD', '--', 'policies'));

  const openView = async (token: string, view: 'providers' | 'keys'): Promise<Page> => {
    const { context, foreign: seen } = await loopbackOnlyContext(browser);
    const page = await context.newPage();
    page.on('close', () => foreign.push(...seen));
    await page.goto(`${api}/ui/`);
    await signIn(page, token);
    await page.click(`[data-tab=${view}]`);
    await page.waitForSelector(`[data-view=${view}]`);
    return page;
  };
  const rowsOf = async (page: Page, table: string): Promise<string[]> => {
    await page.waitForSelector(`[data-table=${table}] .tabulator-row`);
    return page.locator(`[data-table=${table}] .tabulator-row`).allTextContents();
  };

  beforeAll(async () => {
    fakes = await startFakes(keys);
    nova = await startOpenAIFake({
      name: 'nova-fake',
      apiKey: novaKey,
      contextWindows: { 'nova-large': 32_000, 'nova-small': 8_000 },
    });
    // nova is configured but none of its models is curated yet: its models are only discovered.
    repo = await policyRepo(
      scenarioPolicies(fakes)
        .replace(
          'providers:\n',
          `providers:\n  nova:\n    kind: openai_compatible\n    base_url: ${nova.url}/v1\n    credential: env:NOVA_API_KEY\n`,
        )
        .replace(
          'profiles:\n',
          'profiles:\n  agents:\n    requires: [chat]\n    models: [llama-small]\n    prefer: [context]\n',
        )
        .concat('\ncallers:\n  alice:\n    description: the agents\n    profiles: [agents]\n'),
    );
    const { env, port, apiPort } = await serveEnv(
      keys,
      { admin: ADMIN, read: READ },
      {
        MODELCENTER_POLL_SECONDS: '0.5',
        MODELCENTER_RELOAD_STRATEGY: 'restart',
        NOVA_API_KEY: novaKey,
      },
    );
    api = `http://127.0.0.1:${apiPort}`;
    service = serveInProcess(repo, env);
    await service.started();
    litellm = new OpenAI({
      baseURL: `http://127.0.0.1:${port}/v1`,
      apiKey: keys.master,
      maxRetries: 0,
      timeout: scaled(30_000),
    });
    const synced = await apiCall<{ ok: boolean; added: string[] }>(
      'POST',
      '/v1/providers/nova/sync',
      {},
    );
    expect(synced.body).toMatchObject({ ok: true, added: ['nova/nova-large', 'nova/nova-small'] });
    // Some traffic, so the health and spend figures have something to show.
    for (let i = 0; i < 3; i += 1)
      await litellm.chat.completions.create({
        model: 'gpt-mini',
        messages: [{ role: 'user', content: `providers view ${i}` }],
      });
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    service?.stop();
    await service?.exit;
    await Promise.all([...allFakes(fakes), nova].map((f) => f?.close()));
    await rm(repo, { recursive: true, force: true });
    // Checked last, after every page has closed: no request left loopback.
    expect(foreign).toEqual([]);
  });

  it('lists the configured providers, their health, and the discovered models of the synced upstream beside the catalog', async () => {
    const page = await openView(ADMIN, 'providers');
    const configured = await apiGet<{ providers: { name: string; kind: string }[] }>(
      '/v1/providers',
    );
    const providerRows = await rowsOf(page, 'providers');
    expect(providerRows).toHaveLength(configured.providers.length);
    for (const provider of configured.providers)
      expect(
        providerRows.some((r) => r.startsWith(provider.name) && r.includes(provider.kind)),
      ).toBe(true);
    expect(providerRows.find((r) => r.startsWith('nova'))).toMatch(/2 of 2 kept/);

    const discovered = await rowsOf(page, 'discovered');
    expect(discovered.map((r) => /nova\/nova-(large|small)/.exec(r)?.[0]).sort()).toEqual([
      'nova/nova-large',
      'nova/nova-small',
    ]);
    const curated = await rowsOf(page, 'curated');
    const catalog = await apiGet<{ models: { id: string }[] }>('/v1/models?source=curated');
    expect(curated).toHaveLength(catalog.models.length);

    // Health as the API reports it: every provider with its state, and no demotion.
    await until(async () => {
      const answer = await apiCall('GET', '/v1/health/providers');
      return answer.status === 200 ? true : undefined;
    });
    await until(async () => {
      const spend = await apiGet<{ series: { key: string }[] }>(
        '/v1/spend/series?by=provider&bucket=hour&since=24h',
      );
      return spend.series.some((s) => s.key === 'openai') ? true : undefined;
    });
    await page.reload();
    await page.waitForSelector('[data-view=providers]');
    const health = await apiGet<{ providers: { provider: string; condition: string }[] }>(
      '/v1/health/providers',
    );
    const healthRows = await rowsOf(page, 'health');
    expect(healthRows).toHaveLength(health.providers.length);
    for (const p of health.providers)
      expect(healthRows.some((r) => r.startsWith(p.provider) && r.includes(p.condition))).toBe(
        true,
      );
    await expect(page.getByTestId('demotions').textContent()).resolves.toContain('none');
    // The spend chart per provider: the openai traffic sent above.
    await page.waitForSelector('[data-testid=chart-series] li');
    const series: (string | null)[] = [];
    for (const item of await page.locator('[data-testid=chart-series] li').all())
      series.push(await item.getAttribute('data-series'));
    expect(series).toContain('openai');
    await page.close();
  });

  it('a promotion from the page into a chosen profile ends in a policy commit and the model served; a disable from the page takes it out again', async () => {
    const page = await openView(ADMIN, 'providers');
    const before = policyCommits();
    await page.getByTestId('promote-profile').fill('agents');
    await rowsOf(page, 'discovered');
    await page
      .locator('[data-table=discovered] .tabulator-row')
      .filter({ hasText: 'nova/nova-large' })
      .locator('button.promote')
      .click();
    await page.getByTestId('confirm').waitFor();
    await expect(page.getByTestId('confirm').textContent()).resolves.toContain(
      'Promote nova/nova-large into profile agents',
    );
    await page.getByTestId('confirm-yes').click();
    const verified = page.getByTestId('outcome-verified');
    await verified.waitFor({ timeout: scaled(180_000) });
    expect(await verified.getAttribute('data-verified')).toBe('true');

    expect(policyCommits()).toBe(before + 1);
    const commit = await page.getByTestId('outcome-commit').getAttribute('data-commit');
    // The newest policy commit is the page's (the generated commit made from it follows it).
    expect(git(repo, 'rev-list', '-1', 'HEAD', '--', 'policies')).toBe(commit);
    expect(git(repo, 'log', '-1', '--format=%s', commit!)).toMatch(/nova-large/);
    await expect(page.getByTestId('outcome').textContent()).resolves.toContain('agents/nova-large');

    // Served: the profile answers from the new upstream, with its key.
    const reply = await litellm.chat.completions.create({
      model: 'agents',
      messages: [{ role: 'user', content: 'hello' }],
    });
    expect(reply.choices[0]!.message.content).toContain('reply from nova-fake:nova-large');
    // The page read the catalog again: nova-large is curated, and the discovered row says so.
    await until(async () => {
      const rows = await rowsOf(page, 'curated');
      return rows.some((r) => r.includes('nova-large')) ? true : undefined;
    });
    await expect(
      page
        .locator('[data-table=discovered] .tabulator-row')
        .filter({ hasText: 'nova/nova-large' })
        .locator('[tabulator-field=curatedAs]')
        .textContent(),
    ).resolves.toBe('nova-large');
    await screenshot(page, 'providers');

    // Disabled from the page: one more policy commit, applied, and the profile falls back.
    await page
      .locator('[data-table=curated] .tabulator-row')
      .filter({ hasText: 'nova-large' })
      .locator('button.toggle-model')
      .click();
    await page.getByTestId('confirm').waitFor();
    await expect(page.getByTestId('confirm').textContent()).resolves.toContain(
      'Disable nova-large',
    );
    await page.getByTestId('confirm-yes').click();
    await page
      .getByTestId('outcome')
      .filter({ hasText: 'Disable nova-large' })
      .waitFor({
        timeout: scaled(180_000),
      });
    expect(await page.getByTestId('outcome-verified').getAttribute('data-verified')).toBe('true');
    await expect(page.getByTestId('outcome').textContent()).resolves.toMatch(
      /no longer served: .*agents\/nova-large/,
    );
    expect(policyCommits()).toBe(before + 2);
    const fallback = await litellm.chat.completions.create({
      model: 'agents',
      messages: [{ role: 'user', content: 'hello again' }],
    });
    expect(fallback.choices[0]!.message.content).toContain('reply from ollama-fake');
    await page.close();
  });

  it('lists the credentials with fingerprints, rotates one through the page, and the value is nowhere in the page afterwards', async () => {
    const page = await openView(ADMIN, 'keys');
    const credentials = (await apiGet<{ credentials: Credential[] }>('/v1/credentials'))
      .credentials;
    const rows = await rowsOf(page, 'credentials');
    expect(rows).toHaveLength(credentials.length);
    for (const c of credentials) {
      expect(c.fingerprint).toBeTruthy();
      expect(rows.some((r) => r.startsWith(c.provider) && r.includes(c.fingerprint!))).toBe(true);
    }
    expect(rows.find((r) => r.startsWith('openai'))).toContain(fingerprint(keys.openai));
    // The keys clients present: the master key, and alice, who shares it (configuration mode).
    const clientKeys = await rowsOf(page, 'keys');
    expect(clientKeys).toHaveLength(2);
    expect(clientKeys.find((r) => r.startsWith('master-key'))).toContain(fingerprint(keys.master));
    expect(clientKeys.find((r) => r.startsWith('caller:alice'))).toContain(
      `${fingerprint(keys.master)} (the master key)`,
    );

    // The provider issued a new key; the old one stays valid until it is revoked.
    fakes.openai.acceptKeys([keys.openai, newOpenAI]);
    await page
      .locator('[data-table=credentials] .tabulator-row')
      .filter({ hasText: fingerprint(keys.openai) })
      .locator('button.rotate')
      .click();
    const field = page.locator('[data-testid=rotate-form] input[name=value]');
    expect(await field.getAttribute('type')).toBe('password');
    await field.fill(newOpenAI);
    await page.getByTestId('rotate-submit').click();
    await expect(page.getByTestId('confirm').textContent()).resolves.toContain(
      'Rotate the openai credential',
    );
    // Waiting for the confirmation, the value is already out of the DOM.
    expect(await page.content()).not.toContain(newOpenAI);
    await page.getByTestId('confirm-yes').click();
    const outcome = page.getByTestId('rotated-fingerprints');
    await outcome.waitFor({ timeout: scaled(180_000) });
    await expect(outcome.textContent()).resolves.toContain(fingerprint(newOpenAI));

    // The table and the audit trail show the rotation by fingerprint.
    await until(async () => {
      const now = await rowsOf(page, 'credentials');
      return now.find((r) => r.startsWith('openai'))?.includes(fingerprint(newOpenAI))
        ? true
        : undefined;
    });
    const audit = await rowsOf(page, 'audit');
    expect(
      audit.some(
        (r) =>
          r.includes('credential.rotate') &&
          r.includes('provider:openai') &&
          r.includes(fingerprint(newOpenAI)),
      ),
    ).toBe(true);
    // The API agrees, and the provider now sees the new key.
    const after = (await apiGet<{ credentials: Credential[] }>('/v1/credentials')).credentials;
    expect(after.find((c) => c.provider === 'openai')?.fingerprint).toBe(fingerprint(newOpenAI));
    await litellm.chat.completions.create({
      model: 'gpt-mini',
      messages: [{ role: 'user', content: 'after the rotation' }],
    });
    expect(fakes.openai.generations().at(-1)?.headers.authorization).toBe(`Bearer ${newOpenAI}`);

    // The rotated value appears nowhere in the page: not in the DOM, not in any field.
    expect(await page.content()).not.toContain(newOpenAI);
    const values = await page
      .locator('input')
      .evaluateAll((inputs) => inputs.map((i) => (i as unknown as { value: string }).value));
    expect(values.join('\n')).not.toContain(newOpenAI);
    await screenshot(page, 'keys');
    await page.close();
  });

  it('a read token sees both views but no promote, enable or rotate control, and the API refuses them anyway', async () => {
    const page = await openView(READ, 'providers');
    await rowsOf(page, 'discovered');
    await rowsOf(page, 'curated');
    expect(
      await page
        .locator('button.promote, button.toggle-model, [data-testid=promote-profile]')
        .count(),
    ).toBe(0);
    await page.click('[data-tab=keys]');
    await rowsOf(page, 'credentials');
    await rowsOf(page, 'audit');
    expect(await page.locator('button.rotate, [data-testid=rotate-form]').count()).toBe(0);
    await screenshot(page, 'keys-read-token');

    for (const [method, route, body] of [
      ['POST', '/v1/models/promote', { ids: ['nova/nova-small'] }],
      ['PUT', '/v1/models/nova-large/enabled', { enabled: false }],
      ['POST', '/v1/credentials/openai/rotate', { value: testKey() }],
    ] as const) {
      expect((await apiCall(method, route, body, READ)).status).toBe(403);
    }
    await page.close();
  });
});
