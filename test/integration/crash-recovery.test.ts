import { spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/litellm/process.js';
import type { RestartStrategy } from '../../src/reload/restart.js';
import { repoController, stateDirOf } from '../helpers/controller.js';
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

  it.each(['committed', 'reloaded'])(
    'killed right after "%s": the next start converges, the commit verified live and last-known-good',
    async (step) => {
      await strategy?.stop();
      const port = await freePort();
      const tsx = path.join(import.meta.dirname, '..', '..', 'node_modules', '.bin', 'tsx');
      const child = spawnSync(
        tsx,
        [
          path.join(import.meta.dirname, '..', 'helpers', 'apply-and-die.ts'),
          repo,
          String(port),
          step,
        ],
        {
          env: {
            ...process.env,
            LITELLM_MASTER_KEY: keys.master,
            PROVIDER_ENV: JSON.stringify(providerEnv(keys)),
          },
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
      // The dead controller's LiteLLM (started after "committed") exits with it: the watchdog
      // launcher's PR_SET_PDEATHSIG. Nothing holds the port within 10 s.
      const answering = () =>
        fetch(`http://127.0.0.1:${port}/health/readiness`).then(
          (r) => r.ok,
          () => false,
        );
      const deadline = Date.now() + 10_000;
      while ((await answering()) && Date.now() < deadline) await sleep(200);
      expect(await answering()).toBe(false);

      const made = await repoController(repo, {
        port,
        masterKey: keys.master,
        env: providerEnv(keys),
        stateDir: stateDirOf(repo),
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
      await strategy.stop();
      git(repo, 'update-ref', '-d', 'refs/modelcenter/last-known-good');
      git(repo, 'reset', '-q', '--hard', 'HEAD~1'); // back to the policy commit for the next case
    },
    120_000,
  );
});
