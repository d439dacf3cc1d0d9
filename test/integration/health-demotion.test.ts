import { rm } from 'node:fs/promises';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runCli } from '../../src/cli/run.js';
import { alertReceiver } from '../helpers/alerts.js';
import {
  healthPolicies,
  keepAsking,
  startHealthFakes,
  whoAnswers,
  type HealthFakes,
} from '../helpers/health-scenario.js';
import { git, policyRepo } from '../helpers/repo.js';
import { serveEnv, serveInProcess, until, type ServingInProcess } from '../helpers/serve.js';
import { newKeys } from '../helpers/stack.js';
import { scaled } from '../helpers/timing.js';

vi.setConfig({ testTimeout: scaled(300_000), hookTimeout: scaled(120_000) });

/**
 * Demotion end to end: the real service, the real LiteLLM, fake upstreams. `alpha` is preferred;
 * its upstream fails for longer than the threshold → a new policy commit moves it to the end of
 * the profile, applied and verified, and LiteLLM answers from `beta` first; once alpha has
 * recovered for long enough it is restored by another commit and answers first again.
 */
describe('health: sustained failure demotes a provider, recovery restores it', () => {
  const keys = newKeys();
  const token = 'mc-admin-token-for-health-tests-0123456789';
  let fakes: HealthFakes;
  let repo: string;
  let service: ServingInProcess;
  let client: OpenAI;
  let apiPort: number;
  let alerts: Awaited<ReturnType<typeof alertReceiver>>;

  beforeAll(async () => {
    fakes = await startHealthFakes(keys);
    alerts = await alertReceiver();
    repo = await policyRepo(
      healthPolicies(
        fakes,
        `  window: 10s
  evaluate_every: 1s
  alert: { error_rate: 0.5, min_requests: 3 }
  demotion: { error_rate: 0.5, min_requests: 3, after: 4s, recover_below: 0.1, recover_after: 30s, max_reloads_per_hour: 10 }`,
        '  chat: { requires: [chat], prefer: [quality] }',
      ),
    );
    const served = await serveEnv(
      keys,
      { admin: token },
      { MODELCENTER_POLL_SECONDS: '0.5', MODELCENTER_ALERT_WEBHOOK: alerts.url },
    );
    apiPort = served.apiPort;
    service = serveInProcess(repo, served.env);
    client = new OpenAI({
      baseURL: `http://127.0.0.1:${served.port}/v1`,
      apiKey: keys.master,
      maxRetries: 0,
      timeout: scaled(30_000),
    });
    await service.started();
  });
  afterAll(async () => {
    service?.stop();
    await service?.exit;
    await alerts?.close();
    await Promise.all([fakes?.alpha.close(), fakes?.beta.close()]);
    if (repo) await rm(repo, { recursive: true, force: true });
  });

  const healthCommits = () =>
    git(repo, 'log', '--format=%s', '--', 'policies/modelcenter-health.yaml')
      .split('\n')
      .filter(Boolean);
  const health = async () =>
    (await (
      await fetch(`http://127.0.0.1:${apiPort}/v1/health/providers`, {
        headers: { authorization: `Bearer ${token}` },
      })
    ).json()) as {
      providers: {
        provider: string;
        condition: string;
        requests: number;
        errors: number;
        p50LatencyMs?: number;
        demoted?: { reason: string };
        deployments: { deployment: string; requests: number }[];
      }[];
      lastChange?: { message: string; outcome: string };
    };

  it('demotes alpha after its upstream fails past the threshold, then restores it', async () => {
    // Healthy: alpha answers first.
    expect(await whoAnswers(client, 'chat')).toBe('alpha');
    const configBefore = git(repo, 'log', '-1', '--format=%H', '--', 'litellm/config.yaml');

    fakes.alpha.setFault({ kind: 'status', status: 500 });
    const traffic = keepAsking(client, 'chat');
    try {
      await until(
        () =>
          Promise.resolve(
            healthCommits().includes('modelcenter health: demote alpha') || undefined,
          ),
        180_000,
      );
      // The overlay commit went through the normal apply path: a new generated config commit.
      // Applied by the overlay's own apply, or already live through the policy trigger's.
      const live = await until(async () => {
        const report = await health();
        return report.lastChange?.message === 'modelcenter health: demote alpha' &&
          ['applied', 'unchanged'].includes(report.lastChange.outcome)
          ? report
          : undefined;
      }, 180_000);
      const alpha = live.providers.find((p) => p.provider === 'alpha');
      expect(alpha?.demoted?.reason).toMatch(/^failing for \d+ s: \d+ of \d+ requests failed/);
      expect(alpha?.errors).toBeGreaterThanOrEqual(3);
      expect(git(repo, 'log', '-1', '--format=%H', '--', 'litellm/config.yaml')).not.toBe(
        configBefore,
      );
      expect(git(repo, 'log', '-1', '--format=%B', '--', 'litellm/config.yaml')).toMatch(
        /render config from policies@/,
      );
      // The webhook heard about the error-rate spike, once.
      const spikes = alerts.received.filter(
        (a) => (a as { alert: { type: string } }).alert.type === 'provider-health',
      );
      expect(spikes).toHaveLength(1);
      expect(spikes[0]).toMatchObject({ alert: { provider: 'alpha', event: 'error-rate' } });
    } finally {
      await traffic.stop();
    }

    // The CLI asks the running service; a demoted provider makes it exit 2.
    let out = '';
    const code = await runCli(
      ['providers', 'health'],
      { stdout: (t) => (out += t), stderr: (t) => (out += t), cwd: repo },
      { MODELCENTER_API_PORT: String(apiPort), MODELCENTER_TOKEN: token },
    );
    expect(code).toBe(2);
    expect(out).toMatch(/^alpha\s+demoted \(/m);
    expect(out).toMatch(/^ {2}chat\/alpha-chat\s+\d+/m);
    expect(out).toMatch(/demoted alpha since .*: failing for \d+ s/);

    // alpha is still failing, but LiteLLM no longer tries it first: every request is beta's.
    const alphaBefore = fakes.alpha.generations().length;
    const answers: string[] = [];
    for (let i = 0; i < 10; i += 1) answers.push(await whoAnswers(client, 'chat'));
    expect(answers).toEqual(Array(10).fill('beta'));
    expect(fakes.alpha.generations().length).toBe(alphaBefore);

    // alpha recovers: with no errors left in its window for 30 s it is restored by a commit.
    fakes.alpha.setFault(undefined);
    await until(
      () =>
        Promise.resolve(healthCommits()[0] === 'modelcenter health: restore alpha' || undefined),
      180_000,
    );
    await until(async () => ((await whoAnswers(client, 'chat')) === 'alpha' ? true : undefined));
    expect(healthCommits()).toEqual([
      'modelcenter health: restore alpha',
      'modelcenter health: demote alpha',
    ]);
    const body = git(repo, 'log', '-1', '--format=%B', '--', 'policies/modelcenter-health.yaml');
    expect(body).toMatch(/Restored alpha: recovered for \d+ s/);
    // The health report says so once the restore's apply has been verified.
    const restored = await until(async () => {
      const report = await health();
      return report.lastChange?.message === 'modelcenter health: restore alpha' &&
        ['applied', 'unchanged'].includes(report.lastChange.outcome)
        ? report
        : undefined;
    });
    expect(restored.providers.find((p) => p.provider === 'alpha')?.demoted).toBeUndefined();
  });
});
