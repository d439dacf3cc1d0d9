import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Controller } from '../../src/apply/controller.js';
import { freePort } from '../../src/litellm/process.js';
import { BlueGreenStrategy } from '../../src/reload/blue-green.js';
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
import { underTraffic } from '../helpers/traffic.js';

// Five applies under traffic, each a LiteLLM start.
vi.setConfig({ testTimeout: scaled(300_000) });

describe('apply with the blue-green strategy (real nginx, real LiteLLM)', () => {
  const keys = newKeys();
  let fakes: Fakes;
  let repo: string;
  let strategy: BlueGreenStrategy;
  let controller: Controller;
  let base: string;
  let client: OpenAI;

  beforeAll(async () => {
    fakes = await startFakes(keys);
    base = scenarioPolicies(fakes);
    repo = await policyRepo(base);
    strategy = new BlueGreenStrategy({
      port: await freePort(),
      masterKey: keys.master,
      env: providerEnv(keys),
      stateDir: stateDirOf(repo),
      // LiteLLM's own 90 s start limit is met on a loaded machine only by scaling it.
      readinessTimeoutMs: scaled(90_000),
    });
    controller = await controllerFor(repo, strategy);
    // No retries: a request the switch drops must show up as a failure here.
    client = new OpenAI({
      baseURL: `${strategy.url}/v1`,
      apiKey: keys.master,
      maxRetries: 0,
      timeout: scaled(20_000),
    });
    const first = await controller.apply();
    expect(first.problems).toEqual([]);
    expect(first.outcome).toBe('applied');
  });
  afterAll(async () => {
    await strategy?.stop();
    await Promise.all(allFakes(fakes).map((f) => f.close()));
    await rm(repo, { recursive: true, force: true });
  });

  it('five consecutive applies under continuous traffic: zero failed requests, each change served through nginx', async () => {
    const pids = new Set<number>([strategy.process()!.pid]);
    for (let run = 1; run <= 5; run++) {
      const name = `extra-${run}`;
      await commitPolicies(
        repo,
        base.replace(
          'profiles:',
          `  ${name}:\n    provider: openai\n    upstream: gpt-4o\n    capabilities: [chat]\n    context_window: 128000\n\nprofiles:`,
        ),
        `policies: add ${name}`,
      );
      const {
        result: report,
        sent,
        failures,
      } = await underTraffic(client, async () => {
        const applying = controller.apply();
        // A drift check while the switch is under way is not drift.
        expect(await controller.driftCheck()).toMatchObject({ applying: true, drifted: false });
        return applying;
      });
      expect(report.problems).toEqual([]);
      expect(report.outcome).toBe('applied');
      expect(failures).toEqual([]);
      expect(sent).toBeGreaterThan(20); // traffic really flowed during the switch
      const served = (await strategy.instances()[0]!.deployments()).map((d) => d.id);
      expect(served).toContain(name);
      expect(served).not.toContain(`extra-${run - 1}`);
      pids.add(strategy.process()!.pid);
    }
    // Every apply ran on a fresh instance, and the old ones are gone.
    expect(pids.size).toBe(6);
    const nginxConf = await readFile(path.join(stateDirOf(repo), 'nginx', 'nginx.conf'), 'utf8');
    expect(nginxConf).toContain(`server 127.0.0.1:${strategy.process()!.port};`);
  });

  it('a config LiteLLM cannot start never takes traffic: no failed request, rolled back, last-known-good kept', async () => {
    const lkg = await controller.state.lastKnownGood();
    const live = strategy.process()!.pid;
    await commitPolicies(
      repo,
      `${base}\nlitellm:\n  litellm_settings:\n    callbacks: [no_such_module.handler]\n`,
      'policies: a callback that cannot be imported',
    );
    const { result: report, failures } = await underTraffic(client, () => controller.apply());
    expect(report.outcome).toBe('rolled-back');
    expect(report.problems.join('\n')).toMatch(/no_such_module/);
    expect(failures).toEqual([]);
    expect(await controller.state.lastKnownGood()).toBe(lkg);
    expect(strategy.process()!.pid).toBe(live); // the old instance never stopped serving
    expect(git(repo, 'log', '-1', '--format=%s')).toMatch(/^modelcenter: roll back config to/);
  });
});
