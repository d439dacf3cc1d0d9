import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Controller } from '../../src/apply/controller.js';
import { freePort } from '../../src/litellm/process.js';
import { RestartStrategy } from '../../src/reload/restart.js';
import type { SupervisionEvent } from '../../src/reload/supervisor.js';
import { alive, killRecorded } from '../helpers/children.js';
import { controllerFor, stateDirOf } from '../helpers/controller.js';
import { policyRepo } from '../helpers/repo.js';
import { until } from '../helpers/serve.js';
import {
  allFakes,
  newKeys,
  providerEnv,
  scenarioPolicies,
  startFakes,
  type Fakes,
} from '../helpers/stack.js';
import { trafficClient } from '../helpers/traffic.js';

/**
 * A LiteLLM that is alive but answers nothing (SIGSTOP: a hung event loop, a process swapped out):
 * readiness failing N probes in a row counts as down; it is killed and restarted on the config it
 * served.
 */
describe('supervision: readiness failing N times in a row (restart, real LiteLLM)', () => {
  const keys = newKeys();
  let fakes: Fakes | undefined;
  let repo: string | undefined;
  let strategy: RestartStrategy | undefined;
  let controller: Controller;
  let port = 0;
  const events: SupervisionEvent[] = [];

  beforeAll(async () => {
    fakes = await startFakes(keys);
    repo = await policyRepo(scenarioPolicies(fakes));
    port = await freePort();
    strategy = new RestartStrategy({
      port,
      masterKey: keys.master,
      env: providerEnv(keys),
      stateDir: stateDirOf(repo),
      supervision: { probeIntervalMs: 1000, readinessFailures: 3 },
    });
    strategy.onSupervision((e) => events.push(e));
    controller = await controllerFor(repo, strategy);
    const first = await controller.apply();
    expect(first.outcome).toBe('applied');
  });
  afterAll(async () => {
    const hung = strategy?.process();
    if (hung) process.kill(hung.pid, 'SIGCONT');
    await strategy?.stop();
    if (repo) await killRecorded(stateDirOf(repo));
    if (fakes) await Promise.all(allFakes(fakes).map((f) => f.close()));
    if (repo) await rm(repo, { recursive: true, force: true });
  });

  it('a hung LiteLLM is killed and restarted on the same port; one incident, cause unready', async () => {
    const hung = strategy!.process()!;
    process.kill(hung.pid, 'SIGSTOP');
    try {
      await until(
        () => Promise.resolve(events.find((e) => e.kind === 'restarted')),
        hung.readyAfterMs * 4 + 60_000,
      );
    } finally {
      if (await alive({ pid: hung.pid, marker: `--port ${port}` })) {
        process.kill(hung.pid, 'SIGCONT');
      }
    }
    expect(events.map((e) => e.kind)).toEqual(['down', 'restarting', 'restarted']);
    expect(events[0]).toMatchObject({ kind: 'down', cause: 'unready' });
    expect((events[0] as { reason: string }).reason).toMatch(/readiness failed 3 times in a row/);
    expect(await alive({ pid: hung.pid, marker: `--port ${port}` })).toBe(false);
    expect(strategy!.process()!.pid).not.toBe(hung.pid);
    expect(strategy!.readiness()).toEqual({ ready: true });
    const answer = await trafficClient(
      `http://127.0.0.1:${port}`,
      keys.master,
    ).chat.completions.create({ model: 'fast', messages: [{ role: 'user', content: 'hi' }] });
    expect(answer.choices[0]?.message.content).toContain('reply from');
    expect((await controller.readiness()).ready).toBe(true);
  }, 600_000);
});
