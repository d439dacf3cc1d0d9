import { spawn, type ChildProcess } from 'node:child_process';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alive, killRecorded, recordedChildren, type ChildEntry } from '../helpers/children.js';
import { measureColdStart } from '../helpers/cold-start.js';
import { stateDirOf } from '../helpers/controller.js';
import { policyRepo } from '../helpers/repo.js';
import { serveEnv, until } from '../helpers/serve.js';
import { testKey } from '../helpers/secrets.js';
import { allFakes, newKeys, scenarioPolicies, startFakes, type Fakes } from '../helpers/stack.js';

const ROOT = path.join(import.meta.dirname, '..', '..');

/**
 * `modelcenter serve` as its own process (node, no wrapper), so it can be killed with -9 like a
 * crashed or OOM-killed controller.
 */
function serveProcess(repo: string, env: Record<string, string>): ChildProcess {
  const child = spawn(
    process.execPath,
    [
      // tsx's loader by path: the policy repo (the cwd) has no node_modules to resolve it from.
      '--import',
      pathToFileURL(path.join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href,
      path.join(ROOT, 'src', 'cli', 'index.ts'),
      'serve',
    ],
    {
      cwd: repo,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  child.stderr?.on('data', (chunk: Buffer) => process.stderr.write(chunk));
  return child;
}

describe('kill -9 of the controller (blue-green: LiteLLM and nginx children)', () => {
  const keys = newKeys();
  const admin = testKey('mc-admin-');
  let fakes: Fakes | undefined;
  let repo: string | undefined;
  const started: ChildProcess[] = [];
  let env: Record<string, string>;
  let apiPort = 0;
  let coldStartMs = 0;

  const readyz = () =>
    fetch(`http://127.0.0.1:${apiPort}/readyz`, { signal: AbortSignal.timeout(10_000) }).then(
      (r) => r.status,
    );
  /** serve is up and every instance serves the committed set. */
  const converged = (child: ChildProcess) =>
    until(
      async () => {
        if (child.exitCode !== null) throw new Error(`serve exited with ${child.exitCode}`);
        return (await readyz()) === 200 ? true : undefined;
      },
      coldStartMs * 4 + 60_000,
    );

  beforeAll(async () => {
    fakes = await startFakes(keys);
    const policies = scenarioPolicies(fakes);
    coldStartMs = (await measureColdStart(policies, keys)).ms;
    repo = await policyRepo(policies);
    ({ env, apiPort } = await serveEnv(
      keys,
      { admin },
      { MODELCENTER_RELOAD_STRATEGY: 'blue-green' },
    ));
  });
  afterAll(async () => {
    for (const child of started) if (child.exitCode === null) child.kill('SIGKILL');
    if (repo) await killRecorded(stateDirOf(repo));
    if (fakes) await Promise.all(allFakes(fakes).map((f) => f.close()));
    if (repo) await rm(repo, { recursive: true, force: true });
  });

  it('its LiteLLM and nginx children are gone within 10 s; the next start converges', async () => {
    const first = serveProcess(repo!, env);
    started.push(first);
    await converged(first);
    const children: ChildEntry[] = await recordedChildren(stateDirOf(repo!));
    expect(children.some((c) => c.marker.startsWith('--port'))).toBe(true); // LiteLLM
    expect(children.some((c) => c.marker.endsWith('nginx'))).toBe(true); // the front
    for (const child of children) expect(await alive(child)).toBe(true);

    const exited = new Promise((resolve) => first.once('exit', resolve));
    const killedAt = Date.now();
    first.kill('SIGKILL');
    await exited;
    await until(async () => {
      const left = [];
      for (const child of children) if (await alive(child)) left.push(child);
      return left.length === 0 ? true : undefined;
    }, 15_000).catch(() => undefined);
    const goneAfterMs = Date.now() - killedAt;
    const left = [];
    for (const child of children) if (await alive(child)) left.push(child);
    console.log(`children gone ${goneAfterMs} ms after kill -9 of the controller`);
    expect(left).toEqual([]);
    expect(goneAfterMs).toBeLessThanOrEqual(10_000);

    const second = serveProcess(repo!, env);
    started.push(second);
    await converged(second);
    const report = await fetch(`http://127.0.0.1:${apiPort}/v1/status`, {
      headers: { authorization: `Bearer ${admin}` },
    }).then((r) => r.json() as Promise<{ strategy: string; lastApply?: unknown }>);
    expect(report.strategy).toBe('blue-green');
    const stopped = new Promise((resolve) => second.once('exit', resolve));
    second.kill('SIGTERM');
    await stopped;
  }, 600_000);
});
