import { spawnSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/litellm/process.js';
import type { RestartStrategy } from '../../src/reload/restart.js';
import { repoController } from '../helpers/controller.js';
import { git, policyRepo } from '../helpers/repo.js';
import {
  allFakes,
  newKeys,
  providerEnv,
  scenarioPolicies,
  startFakes,
  type Fakes,
} from '../helpers/stack.js';

describe('a controller killed with SIGKILL between commit and verify', () => {
  const keys = newKeys();
  let fakes: Fakes;
  let repo: string;
  let strategy: RestartStrategy | undefined;

  beforeAll(async () => {
    fakes = await startFakes(keys);
    repo = await policyRepo(scenarioPolicies(fakes));
  });
  afterAll(async () => {
    await strategy?.stop();
    await Promise.all(allFakes(fakes).map((f) => f.close()));
    await rm(repo, { recursive: true, force: true });
  });

  it('converges on the next start: the commit is verified live and becomes last-known-good', async () => {
    const port = await freePort();
    const tsx = path.join(import.meta.dirname, '..', '..', 'node_modules', '.bin', 'tsx');
    const child = spawnSync(
      tsx,
      [path.join(import.meta.dirname, '..', 'helpers', 'apply-and-die.ts'), repo, String(port)],
      {
        env: { ...process.env, LITELLM_MASTER_KEY: keys.master },
        encoding: 'utf8',
      },
    );
    // Killed by SIGKILL: reported as the signal, or as 128+9 when a wrapper process relays it.
    expect(child.signal === 'SIGKILL' || child.status === 137, child.stderr).toBe(true);
    const committed = git(repo, 'rev-parse', 'HEAD');
    expect(git(repo, 'log', '-1', '--format=%s')).toMatch(/^modelcenter: render config/);
    expect(() =>
      git(repo, 'rev-parse', '--verify', '--quiet', 'refs/modelcenter/last-known-good'),
    ).toThrow();

    const made = await repoController(repo, {
      port,
      masterKey: keys.master,
      env: providerEnv(keys),
    });
    strategy = made.strategy;
    const controller = made.controller;
    const report = await controller.start();
    expect(report.recovered).toBe(true);
    expect(report.outcome).toBe('applied');
    expect(report.commit).toBe(committed);
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(committed); // no second commit for the same content
    expect(git(repo, 'rev-parse', 'refs/modelcenter/last-known-good')).toBe(committed);
    const served = (await strategy.instances()[0]!.deployments()).map((d) => d.id);
    expect(served).toContain('fast/llama-small');
  });
});
