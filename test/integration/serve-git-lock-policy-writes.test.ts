import { execFileSync } from 'node:child_process';
import { chmod, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { errorBodySchema } from '../../src/api/server.js';
import type { FakeUpstream } from '../fakes/core.js';
import { startOpenAIFake } from '../fakes/openai.js';
import { git, policyRepo } from '../helpers/repo.js';
import { testKey } from '../helpers/secrets.js';
import { serveEnv, serveInProcess, until, type ServingInProcess } from '../helpers/serve.js';
import { allFakes, newKeys, scenarioPolicies, startFakes, type Fakes } from '../helpers/stack.js';
import { scaled } from '../helpers/timing.js';

// serve twice, and one verified apply (a proven LiteLLM start) per policy write that goes through.
vi.setConfig({ testTimeout: scaled(420_000) });

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

/**
 * The policy writes issues 11–14 added (provider create/update/delete, promote, enable) with
 * `.git/index.lock` present: each fails with git's message (503 git_failed, not a 500), leaves
 * `policies/` and `litellm/config.yaml` as they were, reports no drift, and is not half-applied;
 * `serve` restarts with the lock still there, and once the lock is gone the same request succeeds.
 */
describe('policy writes through the API with .git/index.lock present (real git, real LiteLLM)', () => {
  const keys = newKeys();
  const adminToken = testKey('mc-admin-');
  const novaKey = testKey('nova-');
  let fakes: Fakes;
  let nova: FakeUpstream;
  let repo: string;
  let running: ServingInProcess | undefined;
  let api = '';

  const call = async (method: string, route: string, body?: unknown): Promise<Answer> => {
    const response = await fetch(`${api}${route}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  const start = async () => {
    const { env, apiPort } = await serveEnv(
      keys,
      { admin: `operator=${adminToken}` },
      { MODELCENTER_POLL_SECONDS: '3600', NOVA_API_KEY: novaKey },
    );
    running = serveInProcess(repo, env);
    await running.started();
    api = `http://127.0.0.1:${apiPort}`;
  };
  const lock = () => path.join(repo, '.git', 'index.lock');
  /**
   * `.git` read-only. As root a mode does not stop git, so the immutable attribute does (chattr);
   * as anyone else, chmod.
   */
  let readOnly = false;
  const writable = async (yes: boolean) => {
    if (!repo || yes === !readOnly) return;
    const dir = path.join(repo, '.git');
    if (process.getuid?.() === 0) execFileSync('chattr', [yes ? '-i' : '+i', dir]);
    else await chmod(dir, yes ? 0o755 : 0o555);
    readOnly = !yes;
  };

  beforeAll(async () => {
    fakes = await startFakes(keys);
    nova = await startOpenAIFake({ name: 'nova-fake', apiKey: novaKey });
    repo = await policyRepo(scenarioPolicies(fakes));
    await start();
  });
  afterAll(async () => {
    await writable(true);
    running?.stop();
    await running?.exit;
    await Promise.all([...allFakes(fakes), nova].map((f) => f.close()));
    await rm(repo, { recursive: true, force: true });
  });

  it("every policy write fails with git's message and changes nothing; serve restarts; once the lock is gone each write goes live", async () => {
    expect((await call('POST', '/v1/providers/sync-all', {})).status).toBe(200);
    // A discovered model the catalog does not have yet: promoting it is a policy commit.
    const { models } = (await call('GET', '/v1/models?source=discovered')).body as {
      models: { id: string; capabilities: string[]; curatedAs?: string }[];
    };
    const discovered = models
      .filter((m) => !m.curatedAs && m.capabilities.includes('chat'))
      .map((m) => m.id);
    expect(discovered.length).toBeGreaterThan(0);
    const novaDefinition = {
      kind: 'openai_compatible',
      base_url: `${nova.url}/v1`,
      credential: 'env:NOVA_API_KEY',
    };
    const writes: { what: string; method: string; route: string; body: unknown }[] = [
      {
        what: 'provider create',
        method: 'POST',
        route: '/v1/providers',
        body: { name: 'nova', provider: novaDefinition, reason: 'capacity' },
      },
      {
        what: 'provider update',
        method: 'PUT',
        route: '/v1/providers/openai',
        body: {
          provider: {
            kind: 'openai',
            base_url: `${fakes.openai.url}/v1`,
            credential: 'env:OPENAI_API_KEY',
            timeout: '30s',
          },
        },
      },
      {
        what: 'model disable',
        method: 'PUT',
        route: '/v1/models/gpt-mini/enabled',
        body: { enabled: false },
      },
      {
        what: 'promote',
        method: 'POST',
        route: '/v1/models/promote',
        body: { ids: [discovered[0]] },
      },
    ];
    const headBefore = git(repo, 'rev-parse', 'HEAD');
    const configBefore = git(repo, 'show', 'HEAD:litellm/config.yaml');
    const policiesBefore = git(repo, 'ls-files', '-s', 'policies');

    await writeFile(lock(), '');
    for (const write of writes) {
      const answer = await call(write.method, write.route, write.body);
      expect(answer.status, write.what).toBe(503);
      const { error } = errorBodySchema.parse(answer.body);
      expect(error.code, write.what).toBe('git_failed');
      expect(error.message, write.what).toMatch(
        /fatal: Unable to create '.*index\.lock': File exists\./,
      );
      // Nothing half-applied: the files are as committed, nothing staged, no commit.
      expect(git(repo, 'status', '--porcelain'), write.what).toBe('');
      expect(git(repo, 'rev-parse', 'HEAD'), write.what).toBe(headBefore);
    }
    expect(git(repo, 'ls-files', '-s', 'policies')).toBe(policiesBefore);
    const status = (await call('GET', '/v1/status')).body as { drift: { drifted: boolean } };
    expect(status.drift.drifted).toBe(false);
    const drift = (await call('GET', '/v1/drift')).body as { workingTreeEdited: boolean };
    expect(drift.workingTreeEdited).toBe(false);

    // A restart with the lock still there serves the committed config.
    running!.stop();
    expect(await running!.exit).toBe(0);
    await start();
    expect(git(repo, 'status', '--porcelain')).toBe('');
    expect(git(repo, 'show', 'HEAD:litellm/config.yaml')).toBe(configBefore);
    expect((await call('GET', '/readyz')).status).toBe(200);

    // The lock is gone: the same requests go through, each one policy commit by its author,
    // applied (a generated commit follows it).
    await rm(lock());
    for (const write of writes) {
      const answer = await call(write.method, write.route, write.body);
      expect(answer.status, `${write.what}: ${JSON.stringify(answer.body)}`).toBe(200);
      const { commit, apply } = answer.body as { commit: string; apply: { outcome: string } };
      expect(git(repo, 'log', '-1', '--format=%H', '--', 'policies'), write.what).toBe(commit);
      expect(git(repo, 'log', '-1', '--format=%an', commit), write.what).toBe('operator');
      // A provider no model uses yet renders the same config: unchanged, nothing to commit.
      expect(['applied', 'unchanged'], write.what).toContain(apply.outcome);
      if (apply.outcome === 'applied')
        expect(git(repo, 'log', '-1', '--format=%B'), write.what).toContain(
          `Policy-Commit: ${commit}`,
        );
      expect(git(repo, 'status', '--porcelain'), write.what).toBe('');
    }

    // Delete, with and without the lock.
    await writeFile(lock(), '');
    const refused = await call('DELETE', '/v1/providers/nova', {});
    expect(refused.status).toBe(503);
    expect(errorBodySchema.parse(refused.body).error.code).toBe('git_failed');
    expect(git(repo, 'status', '--porcelain')).toBe('');
    await rm(lock());
    const deleted = await call('DELETE', '/v1/providers/nova', {});
    expect(deleted.status, JSON.stringify(deleted.body)).toBe(200);
    const providers = (await call('GET', '/v1/providers')).body as {
      providers: { name: string }[];
    };
    expect(providers.providers.map((p) => p.name)).not.toContain('nova');
    await until(async () => ((await call('GET', '/readyz')).status === 200 ? true : undefined));
  });

  it("with .git read-only an ordinary apply and a policy write fail with git's message and change nothing; writable again, both go through", async () => {
    const file = path.join(repo, 'policies', 'scenario.yaml');
    const text = await readFile(file, 'utf8');
    expect(text).toContain('  retries: 0\n');
    await writeFile(file, text.replace('  retries: 0\n', '  retries: 1\n'));
    git(repo, 'commit', '-qam', 'policies: one retry');
    const policyCommit = git(repo, 'rev-parse', 'HEAD');

    await writable(false);
    try {
      const apply = await call('POST', '/v1/apply', {});
      expect(apply.status).toBe(503);
      const applyError = errorBodySchema.parse(apply.body).error;
      expect(applyError.code).toBe('git_failed');
      expect(applyError.message).toMatch(
        /index\.lock': (Operation not permitted|Permission denied)/,
      );
      const enable = await call('PUT', '/v1/models/gpt-mini/enabled', { enabled: true });
      expect(enable.status).toBe(503);
      expect(errorBodySchema.parse(enable.body).error.code).toBe('git_failed');
      expect(git(repo, 'status', '--porcelain')).toBe('');
      expect(git(repo, 'rev-parse', 'HEAD')).toBe(policyCommit);
      const status = (await call('GET', '/v1/status')).body as { drift: { drifted: boolean } };
      expect(status.drift.drifted).toBe(false);
    } finally {
      await writable(true);
    }

    const applied = await call('POST', '/v1/apply', {});
    expect(applied.status, JSON.stringify(applied.body)).toBe(200);
    expect(applied.body.outcome).toBe('applied');
    expect(git(repo, 'log', '-1', '--format=%B')).toContain(`Policy-Commit: ${policyCommit}`);
    const enabled = await call('PUT', '/v1/models/gpt-mini/enabled', { enabled: true });
    expect(enabled.status, JSON.stringify(enabled.body)).toBe(200);
    expect(git(repo, 'status', '--porcelain')).toBe('');
  });
});
