import { spawn, type ChildProcess } from 'node:child_process';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { alive, killRecorded, recordedChildren } from '../helpers/children.js';
import { stateDirOf } from '../helpers/controller.js';
import { startPostgres, type PostgresCluster } from '../helpers/postgres.js';
import { policyRepo } from '../helpers/repo.js';
import { serveEnv, serveInProcess, until, type ServingInProcess } from '../helpers/serve.js';
import { testKey } from '../helpers/secrets.js';
import { allFakes, newKeys, scenarioPolicies, startFakes, type Fakes } from '../helpers/stack.js';
import { scaled } from '../helpers/timing.js';

// Two controllers, each starting LiteLLM once (the standby after it takes over).
vi.setConfig({ testTimeout: scaled(420_000), hookTimeout: scaled(120_000) });

const ROOT = path.resolve(import.meta.dirname, '..', '..');

describe('two controllers on one PostgreSQL ledger: one active, one standby', () => {
  const keys = newKeys();
  const admin = testKey('mc-admin-');
  let fakes: Fakes | undefined;
  let postgres: PostgresCluster | undefined;
  let repoA: string | undefined;
  let repoB: string | undefined;
  let active: ChildProcess | undefined;
  let standby: ServingInProcess | undefined;

  beforeAll(async () => {
    fakes = await startFakes(keys);
    postgres = await startPostgres();
    // Two hosts' clones of the same policy repository.
    repoA = await policyRepo(scenarioPolicies(fakes));
    repoB = await policyRepo(scenarioPolicies(fakes));
  });
  afterAll(async () => {
    if (active?.exitCode === null) active.kill('SIGKILL');
    standby?.stop();
    await standby?.exit;
    for (const repo of [repoA, repoB]) if (repo) await killRecorded(stateDirOf(repo));
    await postgres?.stop();
    if (fakes) await Promise.all(allFakes(fakes).map((f) => f.close()));
    for (const repo of [repoA, repoB]) if (repo) await rm(repo, { recursive: true, force: true });
  });

  it('the standby answers reads, refuses changes naming the active one, and takes over after kill -9', async () => {
    const extra = {
      MODELCENTER_LEDGER_URL: postgres!.url,
      MODELCENTER_RELOAD_STRATEGY: 'restart',
    };
    const a = await serveEnv(keys, { admin }, extra);
    const b = await serveEnv(keys, { admin }, extra);
    const call = (apiPort: number, method: string, route: string): Promise<Response> =>
      fetch(`http://127.0.0.1:${apiPort}${route}`, {
        method,
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        ...(method === 'POST' && { body: '{}' }),
        signal: AbortSignal.timeout(scaled(240_000)),
      });

    // A: its own process (so it can be killed with -9), started first: the active one.
    let logA = '';
    active = spawn(process.execPath, [path.join(ROOT, 'bin', 'modelcenter.js'), 'serve'], {
      cwd: repoA,
      env: { ...process.env, ...a.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    active.stdout!.on('data', (c: Buffer) => (logA += c.toString('utf8')));
    active.stderr!.on('data', (c: Buffer) => (logA += c.toString('utf8')));
    await until(async () =>
      (await call(a.apiPort, 'GET', '/readyz')).status === 200 ? true : undefined,
    ).catch((error: unknown) => {
      throw new Error(`A did not become ready: ${String(error)}\n${logA.slice(-3000)}`);
    });

    // B: on standby while A holds the lock.
    standby = serveInProcess(repoB!, b.env);
    const standbyStatus = await until(async () => {
      const answer = await call(b.apiPort, 'GET', '/v1/status');
      return answer.ok
        ? ((await answer.json()) as { leader: { role: string; active: { pid: number } } })
        : undefined;
    });
    expect(standbyStatus.leader.role).toBe('standby');
    expect(standbyStatus.leader.active.pid).toBe(active.pid);
    // Reads answer (the shared ledger); changes are refused with the active one named.
    expect((await call(b.apiPort, 'GET', '/v1/spend/report?since=1d')).status).toBe(200);
    const refused = await call(b.apiPort, 'POST', '/v1/apply');
    expect(refused.status).toBe(409);
    const { error } = (await refused.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe('standby');
    expect(error.message).toContain(`pid ${active.pid}`);
    expect(error.message).toContain(`http://127.0.0.1:${a.apiPort}`);
    expect((await call(b.apiPort, 'GET', '/readyz')).status).toBe(503);
    // The active one applies.
    const applied = (await (await call(a.apiPort, 'POST', '/v1/apply')).json()) as {
      outcome: string;
    };
    expect(['applied', 'unchanged']).toContain(applied.outcome);

    // kill -9 of the active one: its session ends, the standby takes the lock and serves.
    const killedAt = Date.now();
    active.kill('SIGKILL');
    await until(() =>
      Promise.resolve(
        standby!.logs().includes('the leader lock is free: taking over') || undefined,
      ),
    );
    const lockTakenMs = Date.now() - killedAt;
    // The dead controller's LiteLLM went with it (watchdog): nothing of A keeps serving.
    await until(async () => {
      const left = await Promise.all((await recordedChildren(stateDirOf(repoA!))).map(alive));
      return left.some(Boolean) ? undefined : true;
    }, 15_000);
    await standby.started();
    await until(async () =>
      (await call(b.apiPort, 'GET', '/readyz')).status === 200 ? true : undefined,
    );
    const servingMs = Date.now() - killedAt;
    console.log(
      `standby took the lock ${lockTakenMs} ms after kill -9 of the active controller; serving (LiteLLM started, verified) after ${servingMs} ms`,
    );
    expect(lockTakenMs).toBeLessThan(scaled(5000));
    const now = (await (await call(b.apiPort, 'GET', '/v1/status')).json()) as {
      leader: { role: string };
    };
    expect(now.leader.role).toBe('active');
    const mutation = await call(b.apiPort, 'POST', '/v1/apply');
    expect(mutation.status).toBe(200);
  });
});
