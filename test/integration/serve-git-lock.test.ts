import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorBodySchema } from '../../src/api/server.js';
import { commitPolicies, git, policyRepo } from '../helpers/repo.js';
import { testKey } from '../helpers/secrets.js';
import { serveEnv, serveInProcess, until, type ServingInProcess } from '../helpers/serve.js';
import { allFakes, newKeys, scenarioPolicies, startFakes, type Fakes } from '../helpers/stack.js';

/** A git lock left behind never wedges `serve`: not through the API, not across a restart. */
describe('serve with .git/index.lock present (real git, real LiteLLM)', () => {
  const keys = newKeys();
  const adminToken = testKey('mc-admin-');
  let fakes: Fakes;
  let repo: string;
  let running: ServingInProcess | undefined;

  beforeAll(async () => {
    fakes = await startFakes(keys);
    repo = await policyRepo(scenarioPolicies(fakes));
  });
  afterAll(async () => {
    running?.stop();
    await running?.exit;
    await Promise.all(allFakes(fakes).map((f) => f.close()));
    await rm(repo, { recursive: true, force: true });
  });

  it('an apply fails with git\'s message (503, not "edited by hand"), the tree stays clean, a restart serves the committed config, and once the lock is gone the next poll applies the policies', async () => {
    const lock = path.join(repo, '.git', 'index.lock');
    // Applies only when asked, so the policy commit below waits for the API.
    const first = await serveEnv(keys, { admin: adminToken }, { MODELCENTER_POLL_SECONDS: '3600' });
    running = serveInProcess(repo, first.env);
    await running.started();
    const api = `http://127.0.0.1:${first.apiPort}`;
    const post = async (route: string) => {
      const response = await fetch(`${api}${route}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
        body: '{}',
      });
      return { status: response.status, body: await response.json() };
    };
    const generatedBefore = git(repo, 'rev-parse', 'HEAD');

    const policyCommit = await commitPolicies(
      repo,
      scenarioPolicies(fakes).replace('  retries: 0\n', '  retries: 1\n'),
      'policies: one retry',
    );
    await writeFile(lock, '');
    for (let attempt = 0; attempt < 2; attempt++) {
      const answer = await post('/v1/apply');
      expect(answer.status).toBe(503);
      const { error } = errorBodySchema.parse(answer.body);
      expect(error.code).toBe('git_failed');
      expect(error.message).toMatch(/fatal: Unable to create '.*index\.lock': File exists\./);
    }
    expect(git(repo, 'status', '--porcelain')).toBe('');
    const status = (await (
      await fetch(`${api}/v1/status`, { headers: { authorization: `Bearer ${adminToken}` } })
    ).json()) as { drift: { drifted: boolean } };
    expect(status.drift.drifted).toBe(false);

    running.stop();
    expect(await running.exit).toBe(0);

    // Restarted with the lock still there: it serves what is committed, and retries every poll.
    const second = await serveEnv(keys, { admin: adminToken }, { MODELCENTER_POLL_SECONDS: '0.5' });
    running = serveInProcess(repo, second.env);
    await running.started();
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(policyCommit);
    expect(git(repo, 'status', '--porcelain')).toBe('');
    const models = await fetch(`http://127.0.0.1:${second.port}/v1/models`, {
      headers: { authorization: `Bearer ${keys.master}` },
    });
    expect(models.status).toBe(200);
    expect(running.logs()).toContain('index.lock');

    await rm(lock);
    await until(() =>
      Promise.resolve(
        git(repo, 'log', '-1', '--format=%B').includes(`Policy-Commit: ${policyCommit}`) ||
          undefined,
      ),
    );
    expect(git(repo, 'rev-parse', 'HEAD~1')).toBe(policyCommit);
    expect(git(repo, 'rev-parse', 'HEAD')).not.toBe(generatedBefore);
    await until(() =>
      Promise.resolve(
        git(repo, 'rev-parse', 'refs/modelcenter/last-known-good') ===
          git(repo, 'rev-parse', 'HEAD') || undefined,
      ),
    );
  }, 300_000);
});
