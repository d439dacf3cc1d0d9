import { rm } from 'node:fs/promises';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runCli } from '../../src/cli/run.js';
import {
  healthPolicies,
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
 * Routing from measurements, end to end: a `prefer: [latency]` profile lists alpha first (no
 * measurements yet: by name). Real traffic through LiteLLM makes alpha slow and beta fast; the
 * ledger measures it, the health controller commits the measurements and the profile reorders,
 * LiteLLM answers from beta first, and `plan` (after a rollback to the old order) says why.
 */
describe('health: prefer latency reorders a profile by what the ledger measured', () => {
  const keys = newKeys();
  const token = 'mc-admin-token-for-ranking-tests-0123456789';
  let fakes: HealthFakes;
  let repo: string;
  let service: ServingInProcess;
  let client: OpenAI;
  let apiPort: number;
  let env: Record<string, string>;

  beforeAll(async () => {
    fakes = await startHealthFakes(keys);
    repo = await policyRepo(
      healthPolicies(
        fakes,
        `  evaluate_every: 1s
  ranking: { min_samples: 6, window: 1h, margin: 0.2 }`,
        '  quick: { requires: [chat], prefer: [latency] }',
      ),
    );
    const served = await serveEnv(keys, { admin: token }, { MODELCENTER_POLL_SECONDS: '0.5' });
    apiPort = served.apiPort;
    env = served.env;
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
    await Promise.all([fakes?.alpha.close(), fakes?.beta.close()]);
    if (repo) await rm(repo, { recursive: true, force: true });
  });

  const api = async (method: 'GET' | 'POST', route: string, body?: unknown) =>
    (await (
      await fetch(`http://127.0.0.1:${apiPort}${route}`, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        ...(body !== undefined && { body: JSON.stringify(body) }),
      })
    ).json()) as Record<string, unknown>;

  async function streamOnce(model: string): Promise<void> {
    const stream = await client.chat.completions.create({
      model,
      stream: true,
      messages: [{ role: 'user', content: 'measure me' }],
    });
    for await (const chunk of stream) void chunk;
  }

  it('measured latency favouring beta moves it first; plan says why', async () => {
    expect(await whoAnswers(client, 'quick')).toBe('alpha');
    // alpha takes 800 ms to its first token, beta answers at once: six requests each.
    fakes.alpha.setFault({ kind: 'slow-first-token', delayMs: 800 });
    for (let i = 0; i < 6; i += 1) {
      await streamOnce('alpha-chat');
      await streamOnce('beta-chat');
    }
    const reorder = 'modelcenter health: reorder quick by measurements';
    const healthCommit = () =>
      git(repo, 'log', '-1', '--format=%B', '--', 'policies/modelcenter-health.yaml');
    await until(() => Promise.resolve(healthCommit().startsWith(reorder) || undefined), 120_000);
    expect(healthCommit()).toMatch(
      /beta-chat before alpha-chat: prefer latency, p50 \d+ ms \(measured, n=\d+\) against p50 \d+ ms \(measured, n=\d+\)/,
    );
    await until(async () => {
      const report = (await api('GET', '/v1/health/providers')) as {
        lastChange?: { message: string; outcome: string };
      };
      return report.lastChange?.message === reorder &&
        ['applied', 'unchanged'].includes(report.lastChange.outcome)
        ? true
        : undefined;
    }, 180_000);
    // LiteLLM now tries beta first.
    const answers: string[] = [];
    for (let i = 0; i < 5; i += 1) answers.push(await whoAnswers(client, 'quick'));
    expect(answers).toEqual(Array(5).fill('beta'));

    // Back to the config before the reorder: plan says what applying would change, and why.
    const generated = git(repo, 'log', '--format=%H', '--', 'litellm/config.yaml').split('\n');
    const rollback = await api('POST', '/v1/rollback', { to: generated[1] });
    expect(rollback.outcome).toBe('applied');
    expect(await whoAnswers(client, 'quick')).toBe('alpha');
    const plan = (await api('POST', '/v1/plan', {})) as {
      orderChanges: { profile: string; before: string[]; after: string[]; why: string[] }[];
    };
    expect(plan.orderChanges).toHaveLength(1);
    expect(plan.orderChanges[0]).toMatchObject({
      profile: 'quick',
      before: ['alpha-chat', 'beta-chat'],
      after: ['beta-chat', 'alpha-chat'],
    });
    expect(plan.orderChanges[0]?.why[0]).toMatch(
      /^beta-chat before alpha-chat: prefer latency, p50 \d+ ms \(measured, n=\d+\) against p50 \d+ ms/,
    );
    let out = '';
    const code = await runCli(
      ['plan'],
      { stdout: (t) => (out += t), stderr: (t) => (out += t), cwd: repo },
      { ...env, MODELCENTER_TOKEN: token },
    );
    expect(code).toBe(3); // changes present
    expect(out).toMatch(
      /order of profile quick changes:\n {2}beta-chat before alpha-chat: prefer latency/,
    );
    // The health report shows the measured latencies per provider.
    const report = (await api('GET', '/v1/health/providers')) as {
      providers: { provider: string; p50LatencyMs?: number }[];
    };
    const p50 = (name: string) => report.providers.find((p) => p.provider === name)?.p50LatencyMs;
    expect(p50('alpha')).toBeGreaterThan(p50('beta')! * 2);
  });
});
