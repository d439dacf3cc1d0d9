import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alive, killRecorded, recordedChildren } from '../helpers/children.js';
import { stateDirOf } from '../helpers/controller.js';
import { policyRepo } from '../helpers/repo.js';
import { serveEnv, serveInProcess, until, type ServingInProcess } from '../helpers/serve.js';
import { testKey } from '../helpers/secrets.js';
import { allFakes, newKeys, scenarioPolicies, startFakes, type Fakes } from '../helpers/stack.js';

/**
 * The controller is stopped (SIGTERM) while supervision is restarting a killed LiteLLM: the
 * LiteLLM that restart is starting must not outlive it. (It did: stop() saw no running process,
 * the restart finished afterwards and left LiteLLM serving, and the controller never exited.)
 */
describe.each(['restart', 'blue-green'] as const)(
  'supervision: stopped during a supervised restart (%s)',
  (strategy) => {
    const keys = newKeys();
    let fakes: Fakes | undefined;
    let repo: string | undefined;
    let serving: ServingInProcess | undefined;

    beforeAll(async () => {
      fakes = await startFakes(keys);
      repo = await policyRepo(scenarioPolicies(fakes));
      const { env } = await serveEnv(
        keys,
        { admin: testKey('mc-admin-') },
        { MODELCENTER_RELOAD_STRATEGY: strategy },
      );
      serving = serveInProcess(repo, env);
      await serving.started();
    });
    afterAll(async () => {
      serving?.stop();
      await serving?.exit;
      if (repo) await killRecorded(stateDirOf(repo));
      if (fakes) await Promise.all(allFakes(fakes).map((f) => f.close()));
      if (repo) await rm(repo, { recursive: true, force: true });
    });

    it('every LiteLLM it started is gone once it has exited', async () => {
      const stateDir = stateDirOf(repo!);
      const [victim] = (await recordedChildren(stateDir)).filter((c) =>
        c.marker.startsWith('--port'),
      );
      expect(victim).toBeDefined();
      process.kill(victim!.pid, 'SIGKILL');
      // The replacing LiteLLM is spawned (recorded) and still starting: stop now.
      await until(async () => {
        const started = (await recordedChildren(stateDir)).filter(
          (c) => c.marker.startsWith('--port') && c.pid !== victim!.pid,
        );
        for (const child of started) if (await alive(child)) return true;
        return undefined;
      }, 30_000);
      serving!.stop();
      expect(await serving!.exit).toBe(0);
      const left = [];
      for (const child of await recordedChildren(stateDir))
        if (await alive(child)) left.push(child);
      expect(left).toEqual([]);
    }, 600_000);
  },
);
