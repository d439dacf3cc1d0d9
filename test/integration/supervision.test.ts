import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertReceiver } from '../helpers/alerts.js';
import { alive, killRecorded, recordedChildren } from '../helpers/children.js';
import { measureColdStart } from '../helpers/cold-start.js';
import { stateDirOf } from '../helpers/controller.js';
import { policyRepo } from '../helpers/repo.js';
import { serveEnv, serveInProcess, until, type ServingInProcess } from '../helpers/serve.js';
import { testKey } from '../helpers/secrets.js';
import { allFakes, newKeys, scenarioPolicies, startFakes, type Fakes } from '../helpers/stack.js';
import { steadyTraffic, trafficClient } from '../helpers/traffic.js';

/**
 * `kill -9` of the LiteLLM that `modelcenter serve` runs, under steady traffic through the
 * `openai` client: supervision restarts it on the config it served, on the same URL, within a
 * measured cold start + 2 s; `/readyz` answers 503 meanwhile; one alert, one restart counted.
 */
describe.each(['restart', 'blue-green'] as const)(
  'supervision: kill -9 of LiteLLM under steady traffic (%s)',
  (strategy) => {
    const keys = newKeys();
    const admin = testKey('mc-admin-');
    let fakes: Fakes | undefined;
    let repo: string | undefined;
    let alerts: Awaited<ReturnType<typeof alertReceiver>> | undefined;
    let serving: ServingInProcess | undefined;
    let coldStartMs = 0;
    let firstAnswerMs = 0;
    let port = 0;
    let apiPort = 0;

    const api = (route: string, token?: string) =>
      fetch(`http://127.0.0.1:${apiPort}${route}`, {
        headers: token ? { authorization: `Bearer ${token}` } : {},
        signal: AbortSignal.timeout(30_000),
      });

    beforeAll(async () => {
      fakes = await startFakes(keys);
      const policies = scenarioPolicies(fakes);
      ({ ms: coldStartMs, firstAnswerMs } = await measureColdStart(policies, keys));
      repo = await policyRepo(policies);
      alerts = await alertReceiver();
      let env: Record<string, string>;
      ({ env, port, apiPort } = await serveEnv(
        keys,
        { admin },
        {
          MODELCENTER_RELOAD_STRATEGY: strategy,
          MODELCENTER_ALERT_WEBHOOK: alerts.url,
        },
      ));
      serving = serveInProcess(repo, env);
      await serving.started();
    });
    afterAll(async () => {
      serving?.stop();
      await serving?.exit;
      if (repo) await killRecorded(stateDirOf(repo)); // whatever a failed test left running
      await alerts?.close();
      if (fakes) await Promise.all(allFakes(fakes).map((f) => f.close()));
      if (repo) await rm(repo, { recursive: true, force: true });
    });

    it('served again on the same URL within cold start + 2 s, /readyz 503 meanwhile, one alert, one restart counted', async () => {
      expect((await api('/readyz')).status).toBe(200);
      const client = trafficClient(`http://127.0.0.1:${port}`, keys.master);
      const traffic = steadyTraffic(client);
      try {
        await until(() => Promise.resolve(traffic.outcomes.some((o) => o.ok) || undefined));
        const litellm = (await recordedChildren(stateDirOf(repo!))).filter((c) =>
          c.marker.startsWith('--port'),
        );
        expect(litellm).toHaveLength(1);
        const victim = litellm[0]!;
        const killedAt = Date.now();
        process.kill(victim.pid, 'SIGKILL');

        // /readyz says 503, with a reason, while the restart runs.
        const notReady = await until(async () => {
          const answer = await api('/readyz');
          return answer.status === 503
            ? ((await answer.json()) as { ready: boolean; reason: string })
            : undefined;
        }, coldStartMs);
        expect(notReady.ready).toBe(false);
        expect(notReady.reason).toMatch(
          /exited unexpectedly|not ready|does not serve|did not answer/,
        );

        const back = await until(
          () => Promise.resolve(traffic.firstSuccessSince(killedAt)),
          coldStartMs * 4 + 30_000, // fail with the figures below rather than a bare timeout
        );
        const recoveredMs = back.endedAt - killedAt;
        // The yardstick: the cold start of the very LiteLLM that replaced the killed one (the
        // machine's load varies by the minute); the one measured before is printed beside.
        const restarted = await until(() =>
          Promise.resolve(
            serving!
              .logs()
              .split('\n')
              .filter((l) => l.includes('supervised process is serving again'))
              .map((l) => JSON.parse(l) as { coldStartMs: number; downForMs: number })[0],
          ),
        );
        // Cold start = spawn → readiness of the replacing LiteLLM + a fresh LiteLLM's first answer
        // (measured before: seconds under load, whichever way it is restarted).
        const budgetMs = restarted.coldStartMs + firstAnswerMs + 2000;
        console.log(
          `${strategy}: cold start measured before ${coldStartMs} ms (first answer ${firstAnswerMs} ms), of the restarted LiteLLM ${restarted.coldStartMs} ms; served again ${recoveredMs} ms after kill -9 (budget ${budgetMs} ms); ${
            traffic.outcomes.filter((o) => !o.ok && o.sentAt >= killedAt).length
          } failed requests`,
        );
        expect(recoveredMs).toBeLessThanOrEqual(budgetMs);
        expect(await alive(victim)).toBe(false);

        await until(
          async () => ((await api('/readyz')).status === 200 ? true : undefined),
          budgetMs,
        );
      } finally {
        await traffic.stop();
      }
      // The same URL keeps serving once back.
      for (let i = 0; i < 3; i++) {
        const answer = await client.chat.completions.create({
          model: 'fast',
          messages: [{ role: 'user', content: 'hi' }],
        });
        expect(answer.choices[0]?.message.content).toContain('reply from');
      }

      await until(() => Promise.resolve(alerts!.received.length > 0 || undefined), 10_000);
      await new Promise((r) => setTimeout(r, 500)); // a second alert would have come by now
      expect(alerts!.received).toHaveLength(1);
      expect(alerts!.received[0]).toMatchObject({
        source: 'modelcenter',
        alert: { type: 'supervision', event: 'down', process: 'litellm', strategy },
      });
      const sent = JSON.stringify(alerts!.received);
      for (const secret of [keys.master, admin, keys.openai, keys.groq]) {
        expect(sent).not.toContain(secret);
      }
      const metrics = await (await api('/metrics', admin)).text();
      expect(metrics).toMatch(
        /modelcenter_litellm_restarts_total\{process="litellm",cause="exit"\} 1\n/,
      );
      expect(serving!.logs()).toContain('supervised process is serving again');
      expect(serving!.logs()).not.toContain(keys.master);
    }, 600_000);

    it('an apply while LiteLLM is down reloads it instead of answering unchanged', async () => {
      // Give supervision no chance: kill it again and apply at once.
      const [victim] = (await recordedChildren(stateDirOf(repo!))).filter((c) =>
        c.marker.startsWith('--port'),
      );
      process.kill(victim!.pid, 'SIGKILL');
      await until(async () => ((await api('/readyz')).status === 503 ? true : undefined), 10_000);
      const answer = await fetch(`http://127.0.0.1:${apiPort}/v1/apply`, {
        method: 'POST',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        body: '{}',
        signal: AbortSignal.timeout(coldStartMs * 6 + 60_000),
      });
      const report = (await answer.json()) as { outcome: string; problems: string[] };
      expect(report.problems).toEqual([]);
      expect(report.outcome).toBe('applied');
      expect((await api('/readyz')).status).toBe(200);
    }, 600_000);

    // Only blue-green runs nginx: the test is declared there alone (restart shows no skipped test).
    if (strategy === 'blue-green')
      it('kill -9 of the nginx front: restarted on the same port, served again, counted as nginx', async () => {
        const [front] = (await recordedChildren(stateDirOf(repo!))).filter((c) =>
          c.marker.endsWith('nginx'),
        );
        expect(front).toBeDefined();
        const client = trafficClient(`http://127.0.0.1:${port}`, keys.master);
        const traffic = steadyTraffic(client);
        try {
          await until(() => Promise.resolve(traffic.outcomes.some((o) => o.ok) || undefined));
          const killedAt = Date.now();
          process.kill(front!.pid, 'SIGKILL');
          // Its workers outlive a master killed with -9; supervision stops them and starts a new front.
          await until(async () => {
            for (const entry of await recordedChildren(stateDirOf(repo!))) {
              if (!entry.marker.endsWith('nginx') || entry.pid === front!.pid) continue;
              if (await alive(entry)) return true;
            }
            return undefined;
          }, 30_000);
          const restartedAt = Date.now();
          const back = await until(
            () => Promise.resolve(traffic.firstSuccessSince(restartedAt)),
            30_000,
          );
          console.log(
            `nginx killed: served again ${back.endedAt - killedAt} ms later; ${traffic.failures().length} failed requests`,
          );
        } finally {
          await traffic.stop();
        }
        for (let i = 0; i < 3; i++) {
          const answer = await client.chat.completions.create({
            model: 'fast',
            messages: [{ role: 'user', content: 'hi' }],
          });
          expect(answer.choices[0]?.message.content).toContain('reply from');
        }
        await until(async () => ((await api('/readyz')).status === 200 ? true : undefined), 30_000);
        const metrics = await (await api('/metrics', admin)).text();
        expect(metrics).toMatch(
          /modelcenter_litellm_restarts_total\{process="nginx",cause="exit"\} 1\n/,
        );
        // The log names how it died, as for LiteLLM (kill -9: 137), not "code null".
        expect(serving!.logs()).toMatch(
          new RegExp(`the nginx front \\(pid ${front!.pid}\\) exited unexpectedly with code 137`),
        );
      }, 600_000);
  },
);
