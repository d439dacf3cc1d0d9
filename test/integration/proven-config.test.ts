import { rm } from 'node:fs/promises';
import type OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Controller } from '../../src/apply/controller.js';
import { freePort } from '../../src/litellm/process.js';
import { BlueGreenStrategy } from '../../src/reload/blue-green.js';
import { RestartStrategy } from '../../src/reload/restart.js';
import type { ReloadStrategy } from '../../src/reload/strategy.js';
import { killRecorded } from '../helpers/children.js';
import { controllerFor, stateDirOf } from '../helpers/controller.js';
import { commitPolicies, git, policyRepo } from '../helpers/repo.js';
import {
  allFakes,
  newKeys,
  providerEnv,
  scenarioPolicies,
  startFakes,
  type Fakes,
} from '../helpers/stack.js';
import { scaled } from '../helpers/timing.js';
import { trafficClient, underTraffic } from '../helpers/traffic.js';

/**
 * A config is proven on a spare port before it touches what serves: one LiteLLM refuses (a
 * callback it cannot import) and one where it silently drops a deployment (a bad parameter) cost
 * zero failed requests in every strategy that starts processes; the old config keeps being served
 * and the apply report names the cause.
 */
describe.each(['restart', 'blue-green'] as const)(
  'a config proven before it serves (%s, real LiteLLM, real git)',
  (name) => {
    const keys = newKeys();
    let fakes: Fakes | undefined;
    let repo: string | undefined;
    let strategy: ReloadStrategy | undefined;
    let controller: Controller;
    let base: string;
    let client: OpenAI;

    const served = async () =>
      (await strategy!.instances()[0]!.deployments()).map((d) => d.id).sort();

    beforeAll(async () => {
      fakes = await startFakes(keys);
      base = scenarioPolicies(fakes);
      repo = await policyRepo(base);
      const port = await freePort();
      const common = {
        port,
        masterKey: keys.master,
        env: providerEnv(keys),
        stateDir: stateDirOf(repo),
        // LiteLLM's own 90 s start limit is met on a loaded machine only by scaling it.
        readinessTimeoutMs: scaled(90_000),
      };
      strategy = name === 'restart' ? new RestartStrategy(common) : new BlueGreenStrategy(common);
      controller = await controllerFor(repo, strategy);
      client = trafficClient(`http://127.0.0.1:${port}`, keys.master);
      const first = await controller.apply();
      expect(first.problems).toEqual([]);
      expect(first.outcome).toBe('applied');
    });
    afterAll(async () => {
      await strategy?.stop();
      if (repo) await killRecorded(stateDirOf(repo));
      if (fakes) await Promise.all(allFakes(fakes).map((f) => f.close()));
      if (repo) await rm(repo, { recursive: true, force: true });
    });

    it('a config LiteLLM refuses: 0 failed requests, the old config still served, the cause named', async () => {
      const lkg = await controller.state.lastKnownGood();
      const before = await served();
      await commitPolicies(
        repo!,
        `${base}\nlitellm:\n  litellm_settings:\n    callbacks: [no_such_module.handler]\n`,
        'policies: a callback that cannot be imported',
      );
      const {
        result: report,
        sent,
        failures,
      } = await underTraffic(client, () => controller.apply());
      expect(report.outcome).toBe('rolled-back');
      expect(report.problems.join('\n')).toMatch(/no_such_module/);
      expect(failures).toEqual([]);
      expect(sent).toBeGreaterThan(5); // traffic really flowed during the attempt
      expect(await controller.state.lastKnownGood()).toBe(lkg);
      expect(await served()).toEqual(before);
      expect(git(repo!, 'log', '-1', '--format=%s')).toMatch(/^modelcenter: roll back config to/);
    }, 600_000);

    it('a deployment LiteLLM silently drops: 0 failed requests, the old config still served, the cause named', async () => {
      const lkg = await controller.state.lastKnownGood();
      const before = await served();
      await commitPolicies(
        repo!,
        base.replace(
          '    credential: env:GROQ_API_KEY\n',
          '    credential: env:GROQ_API_KEY\n    params: { max_retries: often }\n',
        ),
        'policies: groq retries',
      );
      const {
        result: report,
        sent,
        failures,
      } = await underTraffic(client, () => controller.apply());
      expect(report.outcome).toBe('rolled-back');
      expect(report.problems.join('\n')).toMatch(/does not serve .*groq-llama/);
      expect(failures).toEqual([]);
      expect(sent).toBeGreaterThan(5);
      expect(await controller.state.lastKnownGood()).toBe(lkg);
      expect(await served()).toEqual(before);
      expect(before).toContain('groq-llama');
    }, 600_000);
  },
);
