import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  healthPolicies,
  keepAsking,
  startHealthFakes,
  whoAnswers,
  type HealthFakes,
} from '../helpers/health-scenario.js';
import { git, policyRepo } from '../helpers/repo.js';
import { testKey } from '../helpers/secrets.js';
import { serveEnv, serveInProcess, until, type ServingInProcess } from '../helpers/serve.js';
import { newKeys } from '../helpers/stack.js';
import { scaled } from '../helpers/timing.js';

vi.setConfig({ testTimeout: scaled(300_000), hookTimeout: scaled(120_000) });

/**
 * The health controller's demotion is a policy commit too: with `.git/index.lock` present it
 * cannot be made. Nothing may be half-written (the overlay file, the generated config), the
 * report says why, and once the lock is gone the next evaluation commits and applies it.
 */
describe('health: a demotion while git refuses commits waits for git, then goes live', () => {
  const keys = newKeys();
  const token = testKey('mc-admin-');
  let fakes: HealthFakes;
  let repo: string;
  let service: ServingInProcess;
  let client: OpenAI;
  let apiPort: number;

  beforeAll(async () => {
    fakes = await startHealthFakes(keys);
    repo = await policyRepo(
      healthPolicies(
        fakes,
        `  window: 10s
  evaluate_every: 1s
  demotion: { error_rate: 0.5, min_requests: 3, after: 3s, recover_below: 0.1, recover_after: 300s, max_reloads_per_hour: 10 }`,
        '  chat: { requires: [chat], prefer: [quality] }',
      ),
    );
    const served = await serveEnv(keys, { admin: token }, { MODELCENTER_POLL_SECONDS: '3600' });
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
      changeError?: { message: string; error: string };
      lastChange?: { message: string; outcome: string };
    };

  it("the demotion fails with git's message, leaves the tree clean and no drift, and is committed once the lock is gone", async () => {
    expect(await whoAnswers(client, 'chat')).toBe('alpha');
    const lock = path.join(repo, '.git', 'index.lock');
    const headBefore = git(repo, 'rev-parse', 'HEAD');
    await writeFile(lock, '');

    fakes.alpha.setFault({ kind: 'status', status: 500 });
    const traffic = keepAsking(client, 'chat');
    try {
      // The demotion is due and tried: the report names it and git's refusal.
      const refused = await until(async () => {
        const report = await health();
        return report.changeError?.message === 'modelcenter health: demote alpha'
          ? report
          : undefined;
      }, 180_000);
      expect(refused.changeError?.error).toMatch(/index\.lock': File exists/);
      expect(service.logs()).toContain('health overlay could not be committed');
      // Nothing half-written: no overlay file, no staged change, no commit, no drift.
      expect(git(repo, 'status', '--porcelain')).toBe('');
      expect(git(repo, 'rev-parse', 'HEAD')).toBe(headBefore);
      expect(healthCommits()).toEqual([]);
      const drift = (await (
        await fetch(`http://127.0.0.1:${apiPort}/v1/drift`, {
          headers: { authorization: `Bearer ${token}` },
        })
      ).json()) as { workingTreeEdited: boolean; drifted: boolean };
      expect(drift).toMatchObject({ workingTreeEdited: false, drifted: false });

      // The lock is gone: the next evaluation commits the demotion and applies it.
      await rm(lock);
      await until(
        () =>
          Promise.resolve(
            healthCommits().includes('modelcenter health: demote alpha') || undefined,
          ),
        180_000,
      );
      const live = await until(async () => {
        const report = await health();
        return report.lastChange?.message === 'modelcenter health: demote alpha' &&
          ['applied', 'unchanged'].includes(report.lastChange.outcome)
          ? report
          : undefined;
      }, 180_000);
      expect(live.changeError).toBeUndefined();
    } finally {
      await traffic.stop();
    }
    await until(async () => ((await whoAnswers(client, 'chat')) === 'beta' ? true : undefined));
    expect(git(repo, 'status', '--porcelain')).toBe('');
  });
});
